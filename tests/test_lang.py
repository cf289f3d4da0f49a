from __future__ import annotations

from pathlib import Path

import pytest

from aidsearch.lang import detect_en_fr, detect_language

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

EN_QUESTIONS = [
    "What is the total budget?",
    "Who funds it?",
    "budget LAO/027",
    "Kosovo health",
    "Which countries?",
    "Project duration",
    "When does it end?",
    "health insurance Laos",
    "project objectives",
    "Who is the partner agency?",
]
FR_QUESTIONS = [
    "Quel est le budget total ?",
    "Qui finance le projet ?",
    "Pays partenaires",
    "Durée du projet",
    "Quand se termine-t-il ?",
    "assurance maladie",
    "objectifs du projet",
    "Combien coûte le projet au Kosovo ?",
    "Qui est l'agence partenaire ?",
    "Liste des projets clôturés",
]


@pytest.mark.parametrize("question", EN_QUESTIONS)
def test_short_english_questions(question: str) -> None:
    assert detect_language(question) == "en"
    assert detect_en_fr(question) == "en"


@pytest.mark.parametrize("question", FR_QUESTIONS)
def test_short_french_questions(question: str) -> None:
    assert detect_language(question) == "fr"
    assert detect_en_fr(question) == "fr"


@pytest.mark.parametrize(
    ("name", "lang"),
    [("000_7b7491985ac2f3e1.txt", "en"), ("001_23892b46a24a6566.txt", "en"), ("002_7c5a3c9fa8d73ed7.txt", "fr"),
     ("003_0a3d02f309745ae0.txt", "fr"), ("004_9edb3953203c57b8.txt", "en")],
)
def test_seed_documents(name: str, lang: str) -> None:
    assert detect_language((CORPUS / name).read_text(encoding="utf-8")) == lang


def test_no_letters_is_undetermined() -> None:
    assert detect_language("") == "und"
    assert detect_language("12 345 / 2016 - 2028") == "und"
    assert detect_en_fr("12 345") == "en"


def test_other_languages_and_fallback() -> None:
    text = "¿Cuál es el presupuesto total del proyecto de salud en Laos?"
    assert detect_language(text) == "es"
    assert detect_en_fr(text) in {"en", "fr"}
    assert detect_language("Das ist ein langer deutscher Satz über die Finanzierung von Projekten.") == "de"


def test_deterministic() -> None:
    text = "Quel est le budget"
    assert len({detect_language(text) for _ in range(5)}) == 1
