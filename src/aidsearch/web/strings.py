"""The page's texts in English and French, and their lookup (the messages of rejected files are
``aidsearch.incoming.UPLOAD_MESSAGES``)."""
from __future__ import annotations

from ..types import MESSAGES
from ..conversation import FOLLOWUP_LABEL

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
        "followup": FOLLOWUP_LABEL["en"],
        "none": "No answer found in the indexed documents.",
        "hint_none": "Try other words, a more specific question, or fewer filters.",
        "error": "Could not answer",
        "searching": "Searching the documents…",
        "written_by": MESSAGES["en"]["written_by"],
        "show_quotes": "Show the answer quoted from the documents",
        "quoting_instead": MESSAGES["en"]["quoting_instead"],
        "writing": "Writing the answer…",
        "en": "English",
        "fr": "French",
        "added": "added and indexed",
        "unchanged": "already in the index",
        "rejected": "rejected",
        "no_files": "Choose one or more files first.",
        "reading": "Reading documents",
        "embedding": "Indexing passages",
        "progress": "{stage}: {done} of {total}",
        "pace": "{rate} per second, about {left} left",
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
        "followup": FOLLOWUP_LABEL["fr"],
        "none": "Aucune réponse trouvée dans les documents indexés.",
        "hint_none": "Essayez d'autres mots, une question plus précise ou moins de filtres.",
        "error": "Impossible de répondre",
        "searching": "Recherche dans les documents…",
        "written_by": MESSAGES["fr"]["written_by"],
        "show_quotes": "Voir la réponse citée des documents",
        "quoting_instead": MESSAGES["fr"]["quoting_instead"],
        "writing": "Rédaction de la réponse…",
        "en": "anglais",
        "fr": "français",
        "added": "ajouté et indexé",
        "unchanged": "déjà dans l'index",
        "rejected": "refusé",
        "no_files": "Choisissez d'abord un ou plusieurs fichiers.",
        "reading": "Lecture des documents",
        "embedding": "Indexation des passages",
        "progress": "{stage} : {done} sur {total}",
        "pace": "{rate} par seconde, encore {left} environ",
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



def t(lang: str, key: str) -> str:
    """The text ``key`` in ``lang``, in English for a language without texts."""
    return UI.get(lang, UI["en"])[key]


def language_name(lang: str, code: str) -> str:
    """The name of the language ``code`` in ``lang``; ``code`` itself when the page has no name for it."""
    return t(lang, code) if code in UI else code


def number(lang: str, value: float, decimals: int = 0) -> str:
    """``value`` written the way ``lang`` writes numbers ("1,123.5"; in French "1 123,5")."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", "\u202f").replace(".", ",") if lang == "fr" else text


def duration(seconds: float) -> str:
    """"45 s", "3 min", "1 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def progress_text(lang: str, stage: str, done: int, total: int, rate: float | None = None,
                  left: float | None = None) -> str:
    """One line of indexing progress: stage, count, and once known the rate and the time left."""
    line = t(lang, "progress").format(stage=t(lang, "reading" if stage == "read" else "embedding"),
                                      done=number(lang, done), total=number(lang, total))
    if rate is None or left is None:
        return line
    pace = t(lang, "pace").format(rate=number(lang, rate, 1), left=duration(left))
    return f"{line} ({pace})"
