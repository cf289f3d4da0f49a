"""The EN/FR vocabulary shared by ingestion, metadata, search and answers, and the one case/accent fold.

Each list is kept for one use; lists that look alike but are matched differently stay apart, named by that use.
"""
from __future__ import annotations

import re
import unicodedata

__all__ = [
    "ASKED_FIELDS", "ASKED_KINDS", "BACK_REFERENCE", "BULLET", "BULLET_RUN", "COOKIE_NOTICE", "EN_CUES",
    "FICHE_LABELS", "FR_CUES", "LABEL_KINDS", "LIST_MARKER", "NAVIGATION", "NAVIGATION_PHRASES", "PLACE_ASK",
    "SCRIPT_NOTICE", "STOP_WORDS", "WH_CUES", "fold",
]


class _Folded(dict):
    """Code point -> its compatibility decomposition without combining marks, filled as characters are met."""

    def __missing__(self, code: int) -> str:
        folded = "".join(c for c in unicodedata.normalize("NFKD", chr(code)) if not unicodedata.combining(c))
        self[code] = folded
        return folded


_FOLDED = _Folded()


def fold(text: str) -> str:
    """Lowercase and strip accents: "Période d'exécution" -> "periode d'execution" (the same as NFKD then dropping
    combining marks, one character at a time, which is what NFKD does before reordering the marks it drops)."""
    low = text.lower()
    return low if low.isascii() else low.translate(_FOLDED)


# ---------------------------------------------------------------- words

# Folded words left out of search terms (BM25, question terms) and never at the edge of an answer span.
STOP_WORDS = frozenset("""
a an and are as at be been by can could did do does for from had has have how i if in into is it its may more most
of on or our per should so such than that the their them then there these they this those through to under was we
were what when where which while who whom whose why will with within would you your about after also any both each
other over same some only very much many what's is there does did project programme program
au aux avec ce ces cet cette dans de des du elle elles en est et etait été etre être il ils je la le les leur leurs
lui ma mais me meme même mes moi mon ne nos notre nous on ont ou où par pas pour qu que quel quelle quelles quels
qui sa sans se ses son sont sur ta te tes toi ton tu un une vos votre vous y a-t-il combien comment quand quoi
projet programme est-ce c'est qu'est-ce l d j n s t c qu
""".split())

# Words typical of one language (function words and the corpus' topic words, accents kept), counted to tell
# English from French; unlike STOP_WORDS each list belongs to one language.
EN_CUES = frozenset(
    """
    the an of and or to in for with by from at as into about is are was were be been being
    will would can could should shall may might must has have had do does did done not no
    what who whom whose which when where why how much many any some all there this that these those
    it its they their them he she his her we our you your i my
    project projects programme program objective objectives goal goals country countries
    fund funds funded funding funder funders donor donors finances financed financing
    health education water sanitation agriculture governance insurance hospital hospitals
    duration period start starts started end ends ended date dates status closed active
    partner partners agency agencies ministry government support sector results outcome outcomes
    activities beneficiaries women children people total amount cost costs spent year years month months
    list show find give tell describe summary summarize main key who's what's which
    """.split()
) - {"total"}
FR_CUES = frozenset(
    """
    le la les un une des du de d l et ou où est sont était étaient sera seront été être
    qu que qui quoi quel quelle quels quelles combien comment pourquoi quand
    pour par avec dans sur sous au aux ce cet cette ces il elle ils elles y son sa ses leur leurs
    nous vous notre votre mon ma mes je ne pas se
    projet projets programme objectif objectifs pays financement financé financée financés bailleur
    bailleurs santé éducation eau assainissement agriculture gouvernance assurance maladie hôpital
    hôpitaux durée période début fin date dates statut clôturé clôturés actif actifs partenaire
    partenaires agence agences ministère gouvernement appui soutien secteur résultats activités
    bénéficiaires femmes enfants montant coût coûts année années mois ans
    liste listez montre montrez trouve trouvez donne donnez décris décrivez résumé résume termine
    commence
    """.split()
) - {"programme", "date", "dates", "agriculture"}

# A sentence opening with one of these points back to an earlier one ("Il…", "This fund…").
BACK_REFERENCE = re.compile(r"^(?:il|elle|ils|elles|he|she|it|they|this|these|ce|cette|ces|celui|celle|its|his|her|"
                            r"their|son|sa|ses|leur|leurs)\b", re.I)

# ---------------------------------------------------------------- fiche labels

# Labels of project-fiche fields, matched whole (case-insensitive) to a label line, with the field each one names
# and its priority when two labels give the same field. Metadata extraction reads the value under them.
_FICHE_LABELS: tuple[tuple[str, int, str], ...] = (
    ("country", 2, r"(?:project\s+)?countr(?:y|ies)(?:\s*/\s*region)?|pays(?:\s+(?:d'intervention|bénéficiaires?))?"),
    ("partner", 2, r"partner\s+(?:execution|executing|implementing)\s+(?:agency|agencies|institutions?)"
                   r"|(?:agence|institution|organisation)s?\s+(?:d'exécution\s+)?partenaires?"
                   r"|partner\s+(?:agency|agencies|institutions?|organi[sz]ations?|ministry)"
                   r"|(?:implementing\s+)?partners?"
                   r"|partenaires?(?:\s+(?:d'exécution|de\s+mise\s+en\s+(?:œuvre|oeuvre)))?"
                   r"|counterparts?|contreparties?"),
    ("agency", 2, r"(?:[\w-]+'s\s+)?regional\s+office|bureau\s+régional(?:\s+de\s+[\w-]+)?"
                  r"|implementing\s+(?:agency|organi[sz]ation|entity|body)|implemented\s+by|executing\s+agency"
                  r"|agence\s+(?:d'exécution|de\s+mise\s+en\s+(?:œuvre|oeuvre))|mis\s+en\s+(?:œuvre|oeuvre)\s+par"
                  r"|opérateur"),
    ("period", 2, r"(?:implementation|project|execution)\s+period|period\s+of\s+implementation|period"
                  r"|période(?:\s+(?:d'exécution|de\s+mise\s+en\s+(?:œuvre|oeuvre)|du\s+projet))?"),
    ("start", 2, r"(?:project\s+)?start(?:ing)?\s+date|start|date\s+de\s+(?:début|démarrage)"
                 r"|début(?:\s+du\s+projet)?|démarrage"),
    ("end", 2, r"(?:project\s+)?(?:end|closing|completion)\s+date|end|date\s+de\s+(?:fin|clôture)"
               r"|fin(?:\s+du\s+projet)?|clôture"),
    ("duration_months", 2, r"(?:total\s+|project\s+)?duration|durée(?:\s+(?:totale|du\s+projet))?"),
    ("budget", 3, r"total\s+(?:budget|cost|amount)|overall\s+budget|budget\s+total|montant\s+total|coût\s+total"),
    ("budget", 1, r"(?:project\s+)?budget|montant|coût|cost"),
    ("funders", 2, r"contribution\s+breakdown|breakdown\s+of\s+contributions|répartition\s+des\s+contributions"
                   r"|contributions?|donors?(?:\s+(?:amount|montant))?|funders?|funding(?:\s+sources?)?"
                   r"|sources?\s+of\s+funding|(?:financed|funded)\s+by|bailleurs?(?:\(s\))?(?:\s+de\s+fonds)?"
                   r"|sources?\s+de\s+financement|financement|financé\s+par"),
    ("status", 2, r"(?:project\s+)?status|statut(?:\s+du\s+projet)?|état(?:\s+d'avancement)?"),
)
FICHE_LABELS = tuple((field, priority, re.compile(rf"(?:{pat})", re.I)) for field, priority, pat in _FICHE_LABELS)

# The kind of fact the label of a "Label: value" sentence gives ("Budget: …", "Donor: …", "Pays : …"), searched
# anywhere in the folded label; coarser and looser than FICHE_LABELS, to match the kinds a question asks for.
LABEL_KINDS = {
    "amount": re.compile(r"\b(budget|cost|cout|montant|amount|contribution)"),
    "funder": re.compile(r"\b(donor|funder|funded|bailleur|financ|sponsor)"),
    "place": re.compile(r"\b(country|pays|region|province|location|lieu|localisation)"),
    "date": re.compile(r"\b(date|period|periode|duration|duree|start|end|debut|fin|year|annee)"),
}

# ---------------------------------------------------------------- question cues

# The kind of fact a question asks for (searched in the folded question) in the rule-based answerer.
ASKED_KINDS = {
    "amount": re.compile(r"\b(budget|cost|cout|montant|how much|amount|contribut\w*|somme)\b"),
    "funder": re.compile(r"\b(?:who|which|what|qui|quel\w*)(?:\W+\w+){0,2}?\W+"
                         r"(?:fund|financ|donor|bailleur|sponsor)\w*"),
    "count": re.compile(r"\b(how many|combien|number of|nombre)\b"),
    "date": re.compile(r"\b(when|quand|date|dates|period|periode|year|annee|start|end|ends|ended|debut|fin|termine\w*|"
                       r"commence\w*|duration|duree|how long|until|jusqu\w*|months|mois)\b"),
}
# A question about a place, searched in the lowercased (not folded) question.
PLACE_ASK = re.compile(r"\b(where|country|countries|où|pays|région\w*|region\w*|province\w*)\b")

# Follow-up questions ("and its budget?", "et au Laos ?"): the openings that continue the previous question, the
# words of a question, and the question and measure words that are not its subject
FOLLOWUP_OPENING = re.compile(
    r"^\s*(?:(?P<fr>et|qu['’]en est-il|quid|pareil|idem)|(?P<en>and|what about|how about|same for|also))\b",
    re.IGNORECASE,
)
WORD = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)
NOT_SUBJECT = frozenset("""
a an the of in on at for to from by with and or is are was were be been does do did has have had what which who whom
whose when where why how long many much its their this that these those there it about any all last lasts take takes
total cost costs budget budgets duration amount funding funded fund contribution contribute contributes start starts
started end ends ended period date dates year years month months number give gave receive received
le la les l de du des d un une et ou en au aux à est sont était par pour sur dans avec quel quelle quels quelles qui
que qu quoi quand où comment combien son sa ses leur leurs ce cet cette ces y il elle se s totale coût montant durée
financement finance financé période année années mois début fin
""".split())

# The type of answer a question asks for, for the learned stages: the first match in the folded question.
WH_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((t, re.compile(p)) for t, p in (
    ("duration", r"\b(how long|combien de temps|quelle (?:est la )?duree|duree|for how many (?:months|years))\b"),
    ("amount", r"\b(how much|combien (?:coute|a coute|d'argent)|what (?:is|was) the (?:total )?(?:budget|cost|amount)|"
               r"budget|cout|montant|quelle somme|what sum|contribution|finance\w* a hauteur)\b"),
    ("count", r"\b(how many|combien|what number|quel nombre|nombre de|number of|what percentage|quel pourcentage|"
              r"what proportion|what share|quelle part|quelle proportion|what fraction|what age|quel age|how old)\b"),
    ("when", r"\b(when|quand|what year|which year|quelle annee|en quelle|what date|quelle date|depuis quand|"
             r"what month|quel mois|what century|quel siecle|what decade|since when)\b"),
    ("who", r"(^qui\b|\b(?:par|a|de|pour|avec) qui\b|\bwho|\bwhom|\bwhose|\bwhich (?:organi[sz]ation|agency|"
            r"institution|ministry|company|person|donor|body|partner|bank|ngo)\w*|\bquel(?:le)?s? (?:organisation|"
            r"organisme|agence|institution|ministere|entreprise|societe|personne|bailleur|partenaire|ong|banque)\w*)\b"),
    ("where", r"(^(?:d'|par )?ou\b|\b(?:where|which country|what country|which countries|quel pays|quels pays|"
              r"which city|what city|quelle ville|which region|quelle region|which province\w*|quelles? provinces?|"
              r"which district\w*|in which|dans quel\w*|which town|what region|what place|quel lieu)\b)"),
    ("why", r"\b(why|pourquoi|for what reason|pour quelle raison)\b"),
    ("how", r"\b(how|comment|de quelle maniere|de quelle facon|by what means)\b"),
))

# The fiche fields a question asks for (searched in the folded question), answered from the extracted fields.
ASKED_FIELDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((f, re.compile(p)) for f, p in (
    ("funders", r"\b(who (?:funds|finances|financed|funded|pays|are the (?:donors|funders))|which (?:donors?|funders?)|"
                r"(?:which|what) (?:\w+ )?(?:agency|agencies|organi[sz]ations?|institutions?|body|government|country|"
                r"countries|cooperation|partner|partners|bank|fund) (?:funds|finances|financed|funded|pays for)\b|"
                r"quel(?:le)?s? (?:\w+ )?(?:agences?|organismes?|organisations?|institutions?|cooperations?|"
                r"partenaires?|pays|gouvernements?|banques?|fonds) (?:finance|financent|a finance|ont finance)\b|"
                r"qui finance|quels? (?:sont les )?(?:bailleurs|donateurs|financeurs)|funded by whom|"
                r"by whom .*(?:funded|financed)|par qui .*financ|financ\w* par qui|"
                r"contributions? (?:of|per|by|des|par|de|du|d')|how much does \w+ (?:contribute|give|provide)|"
                r"(?:donor|funder|bailleur)s?\b.*\b(?:how much|combien|montant))"),
    ("budget", r"\b(total budget|budget total|overall budget|how much (?:does|did|will) .* cost|"
               r"what (?:does|did) .* cost|combien (?:coute|a coute|coutera)|cout total|montant total|"
               r"what is the budget|quel est le budget|budget of|budget du|budget de la|budget de l)"),
    ("duration_months", r"\b(how long|how many (?:months|years)|duree|combien de (?:temps|mois|annees)|"
                        r"what is the duration|quelle est la duree)\b"),
    ("start", r"\b(when (?:does|did|will) .* (?:start|begin)|(?:what|which) (?:date|day|year) .* (?:start|begin)|"
              r"quelle (?:date|annee) .*(?:commence|debute|demarre)|start date|date de debut|quand (?:commence|"
              r"a commence|debute|demarre)|starting date|begins? when)\b"),
    ("end", r"\b(when (?:does|did|will) .* (?:end|finish|close)|"
            r"(?:what|which) (?:date|day|year) .* (?:end|finish|close)|"
            r"quelle (?:date|annee) .*(?:termine|finit|acheve|prend fin)|end date|date de fin|"
            r"quand (?:se termine|finit|s'acheve|prend fin)|until when|jusqu'a quand|closing date)\b"),
    ("agency", r"\b(which (?:regional )?office|what (?:regional )?office|regional office|bureau regional|"
               r"quel bureau|implementing agency|agence d'execution)\b"),
    ("country", r"\b(?:which|what|quels?) (?:country|pays)\b(?! (?:programme|program|office|strategy|plan|team|"
                r"portfolio|level|director|framework|partnership|operations?|finance|finances|funds|funded|financed))"),
    ("partner", r"\b(which partner|what partner|partner (?:ministry|institution|agency)|who is the partner|"
                r"quel(?:le)? (?:est le |est la )?partenaire|partenaire)\b"),
))

# ---------------------------------------------------------------- bullets

_MARK = r"[-–—*](?=\s|$)|[•·▪►◦‣]"
# One bullet mark at the start of a line ("- ", "• "), with the spaces after it.
BULLET = re.compile(rf"^\s*(?:{_MARK})\s*")
# A bullet or a number marker ("1.", "2)") at the start of a line: list items of a fiche.
LIST_MARKER = re.compile(rf"^\s*(?:{_MARK}|\d{{1,2}}[.)](?=\s))\s*")
# Any run of bullet glyphs before a sentence, dashes included without a space ("-Budget"), trimmed from quotes.
BULLET_RUN = re.compile(r"^\s*(?:[-•*–·▪●]\s*)+")

# ---------------------------------------------------------------- web-page navigation

# Login, account, cookie, sharing, "skip to content", legal and copyright wording: a short line holding one is
# navigation.
NAVIGATION = re.compile(
    r"\b(?:log\s?-?in|log\s?-?out|sign\s?-?in|sign\s?-?up|sign\s?-?out|password|passwort|forgot|intranet|extranet"
    r"|(?:connect|continue)\s+with\s+(?:google|facebook|microsoft|apple|linkedin|twitter|github|e-?mail|us)"
    r"|cookies?|javascript|skip\s+to(?:\s+main)?\s+content|skip\s+navigation"
    r"|aller\s+au\s+contenu|passer\s+au\s+contenu|mot\s+de\s+passe|se\s+connecter|connectez-vous|déconnexion"
    r"|(?:votre|mon)\s+identifiant|identifiant\s+oublié|s['’]abonner|abonnez-vous|subscribe|newsletter"
    r"|s['’]inscrire|inscrivez-vous|navigateur|browser"
    r"|(?:e-?mail|user|your|my)\s+account|(?:mon|votre)\s+compte|create\s+an\s+account|créer\s+un\s+compte"
    r"|enable\s+(?:javascript|cookies)|follow\s+us|suivez-nous|contact\s+us|contactez-nous"
    r"|share\s+(?:this\s+(?:page|article|story|post)|on\s+(?:facebook|twitter|linkedin|x|whatsapp)|via\s+e-?mail)"
    r"|partager\s+(?:sur\s+(?:facebook|twitter|linkedin|x|whatsapp)|cet(?:te)?\s+(?:page|article))"
    r"|back\s+to\s+top|retour\s+en\s+haut|print\s+this\s+page|toggle\s+navigation|main\s+menu|menu\s+principal"
    r"|breadcrumb|fil\s+d['’]ariane|privacy\s+policy|politique\s+de\s+confidentialité|terms\s+of\s+use"
    r"|mentions\s+légales|all\s+rights\s+reserved|tous\s+droits\s+réservés|copyright)\b|©",
    re.IGNORECASE,
)
# Menu and button words: a line made only of these (at most 6 words) is navigation. Phrases are 1 to 3 words.
NAVIGATION_PHRASES = frozenset(
    p.strip()
    for p in """menu, share, partager, account, compte, connexion, login, search, rechercher, home, accueil, print,
    imprimer, contact, nous contacter, facebook, twitter, linkedin, instagram, youtube, whatsapp, x, tweet, email,
    e-mail, close, fermer, next, previous, suivant, précédent, read more, lire la suite, en savoir plus, learn more,
    more, back, retour, top, sitemap, site map, plan du site, english, français, francais, deutsch, español, en, fr,
    de, es, pt, open menu, ouvrir le menu, fermer le menu, accept, accept all, reject, reject all, accepter,
    tout accepter, refuser, tout refuser, settings, paramètres, cookie settings""".split(",")
)
_SCRIPT_ACTION = r"(?:enabled?|activ(?:er|ée?|ez|ate|ated)\b|requires?|requis|nécessite|turn\s+on|disabled|désactivé)"
# "This site needs JavaScript enabled in your browser" notices.
SCRIPT_NOTICE = re.compile(
    rf"javascript.{{0,200}}?(?:{_SCRIPT_ACTION}|navigateur|browser)|{_SCRIPT_ACTION}.{{0,200}}?javascript",
    re.IGNORECASE | re.DOTALL,
)
# "We use cookies to improve your experience" notices.
COOKIE_NOTICE = re.compile(
    r"cookies?.{0,200}?(?:accept|consent|use|utilis|improve|amélior|experience|expérience|privacy|confidentialité"
    r"|navigation|browsing|continuing|poursuivant)|(?:we|nous)\s+(?:use|utilisons)\s+(?:des\s+)?cookies",
    re.IGNORECASE | re.DOTALL,
)
