"""The page's texts in English and French, and their lookup."""
from __future__ import annotations

UI: dict[str, dict[str, str]] = {
    "en": {
        "title": "Project document assistant",
        "subtitle": "Ask in English or French. Answers quote the indexed documents, with numbered sources.",
        "placeholder": "Ask a question in English or French…",
        "ask": "Ask",
        "new_chat": "New conversation",
        "filters": "Filters",
        "country": "Country",
        "language": "Language",
        "funder": "Funder",
        "year_from": "From year",
        "year_to": "To year",
        "clear_filters": "Clear filters",
        "upload": "Add documents",
        "upload_files": "PDF, DOCX, HTML, TXT or MD files",
        "upload_btn": "Add to the index",
        "status": "Index status",
        "documents": "Documents",
        "passages": "Passages",
        "languages": "Languages",
        "updated": "Last update",
        "model": "Model",
        "sources": "Sources",
        "page": "Page",
        "score": "Similarity",
        "in_context": "Show the passage in its context",
        "open": "Open the original",
        "open_text": "Plain text",
        "filters_header": "Filters",
        "followup": "Follow-up on",
        "none": "No answer found in the indexed documents.",
        "hint_none": "Try other words, a more specific question, or fewer filters.",
        "error": "Could not answer",
        "searching": "Searching the documents…",
        "en": "English",
        "fr": "French",
        "added": "added and indexed",
        "unchanged": "already in the index",
        "rejected": "rejected",
        "no_files": "Choose one or more files first.",
        "reading": "Reading documents",
        "embedding": "Indexing passages",
        "api_docs": "HTTP API",
        "footer": "Answers are extracts of the documents; check the cited sources.",
        "open_network": "Open to the network without login: anyone who reaches this address can ask and upload "
                        "documents.",
    },
    "fr": {
        "title": "Assistant documentaire des projets",
        "subtitle": "Posez vos questions en français ou en anglais. Les réponses citent les documents indexés, "
                    "avec des sources numérotées.",
        "placeholder": "Posez une question en français ou en anglais…",
        "ask": "Demander",
        "new_chat": "Nouvelle conversation",
        "filters": "Filtres",
        "country": "Pays",
        "language": "Langue",
        "funder": "Bailleur",
        "year_from": "Depuis l'année",
        "year_to": "Jusqu'à l'année",
        "clear_filters": "Effacer les filtres",
        "upload": "Ajouter des documents",
        "upload_files": "Fichiers PDF, DOCX, HTML, TXT ou MD",
        "upload_btn": "Ajouter à l'index",
        "status": "État de l'index",
        "documents": "Documents",
        "passages": "Passages",
        "languages": "Langues",
        "updated": "Dernière mise à jour",
        "model": "Modèle",
        "sources": "Sources",
        "page": "Page",
        "score": "Similarité",
        "in_context": "Voir le passage dans son contexte",
        "open": "Ouvrir l'original",
        "open_text": "Texte brut",
        "filters_header": "Filtres",
        "followup": "Suite de",
        "none": "Aucune réponse trouvée dans les documents indexés.",
        "hint_none": "Essayez d'autres mots, une question plus précise ou moins de filtres.",
        "error": "Impossible de répondre",
        "searching": "Recherche dans les documents…",
        "en": "anglais",
        "fr": "français",
        "added": "ajouté et indexé",
        "unchanged": "déjà dans l'index",
        "rejected": "refusé",
        "no_files": "Choisissez d'abord un ou plusieurs fichiers.",
        "reading": "Lecture des documents",
        "embedding": "Indexation des passages",
        "api_docs": "API HTTP",
        "footer": "Les réponses sont des extraits des documents ; vérifiez les sources citées.",
        "open_network": "Ouvert au réseau sans connexion : toute personne qui atteint cette adresse peut poser des "
                        "questions et déposer des documents.",
    },
}

EXAMPLES = (
    "What is the total budget of the Lao-Luxembourg Health Sector Support Programme Phase II?",
    "Quelle est la durée totale du projet au Kosovo ?",
    "Which hospitals in Kosovo receive investments?",
    "Combien de fonctionnaires locaux ont reçu un appui technique au Laos ?",
)

UPLOAD_MESSAGES = {
    "en": {"bad_name": "no usable file name", "bad_type": "unsupported type {ext}: use PDF, DOCX, HTML, TXT or MD",
           "empty": "empty file", "too_big": "file too large ({mb:.1f} MB; the limit is {limit} MB)",
           "not_pdf": "not a PDF: the content does not start with %PDF-",
           "not_docx": "not a DOCX: no word/document.xml inside", "not_text": "not a text file: binary content",
           "disabled": "uploads are turned off on this server",
           "quota": "daily upload limit reached ({files} files or {mb} MB per user and day): try again tomorrow"},
    "fr": {"bad_name": "nom de fichier inutilisable",
           "bad_type": "type {ext} non pris en charge : PDF, DOCX, HTML, TXT ou MD",
           "empty": "fichier vide", "too_big": "fichier trop volumineux ({mb:.1f} Mo ; la limite est de {limit} Mo)",
           "not_pdf": "pas un PDF : le contenu ne commence pas par %PDF-",
           "not_docx": "pas un DOCX : pas de word/document.xml", "not_text": "pas un fichier texte : contenu binaire",
           "disabled": "l'ajout de documents est désactivé sur ce serveur",
           "quota": "limite quotidienne d'ajout atteinte ({files} fichiers ou {mb} Mo par utilisateur et par jour) : "
                    "réessayez demain"},
}


def t(lang: str, key: str) -> str:
    """The text ``key`` in ``lang``, in English for a language without texts."""
    return UI.get(lang, UI["en"])[key]


def language_name(lang: str, code: str) -> str:
    """The name of the language ``code`` in ``lang``; ``code`` itself when the page has no name for it."""
    return t(lang, code) if code in UI else code
