from __future__ import annotations

from pathlib import Path

import pytest

from aidsearch.metadata import (
    extract_metadata,
    find_country,
    normalize_country,
    parse_amount,
    parse_date,
    parse_date_range,
    parse_duration_months,
    parse_status,
)

pytestmark = pytest.mark.unit

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def seed(prefix: str) -> dict:
    path = next(CORPUS.glob(f"{prefix}_*.txt"))
    return extract_metadata(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("text", "value", "currency"),
    [
        ("20,850,000 EUR", 20850000.0, "EUR"),
        ("20 850 000 EUR", 20850000.0, "EUR"),
        ("20\u00a0850\u00a0000 €", 20850000.0, "EUR"),
        ("20.850.000 EUR", 20850000.0, "EUR"),
        ("1,3 million EUR", 1300000.0, "EUR"),
        ("EUR 1.25 million", 1250000.0, "EUR"),
        ("1,3 million d'euros", 1300000.0, "EUR"),
        ("US$ 4,000,000", 4000000.0, "USD"),
        ("USD 998,000", 998000.0, "USD"),
        ("$2.5m", 2500000.0, "USD"),
        ("CAD 750 000", 750000.0, "CAD"),
        ("12 500 000 FCFA", 12500000.0, "XOF"),
        ("1,234,567.89 EUR", 1234567.89, "EUR"),
        ("1.234.567,89 EUR", 1234567.89, "EUR"),
    ],
)
def test_parse_amount(text: str, value: float, currency: str) -> None:
    assert parse_amount(text) == (pytest.approx(value), currency)


def test_parse_amount_without_currency_and_none() -> None:
    assert parse_amount("28,400,000") == (28400000.0, None)
    assert parse_amount("156 mois") is None
    assert parse_amount("2016") is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("01.01.2016", "2016-01-01"),
        ("31.12.2028", "2028-12-31"),
        ("20 December 2007", "2007-12-20"),
        ("January 2014", "2014-01"),
        ("février 2012", "2012-02"),
        ("1er janvier 2016", "2016-01-01"),
        ("March 5, 2019", "2019-03-05"),
        ("2016-04-30", "2016-04-30"),
        ("2015", "2015"),
        ("no date here", None),
    ],
)
def test_parse_date(text: str, iso: str | None) -> None:
    assert parse_date(text) == iso


def test_parse_date_range_and_duration() -> None:
    assert parse_date_range("01.01.2016 - 31.12.2028") == ("2016-01-01", "2028-12-31")
    assert parse_date_range("January 2014 - January 2021") == ("2014-01", "2021-01")
    assert parse_date_range("du 1er mars 2015 au 28 février 2019") == ("2015-03-01", "2019-02-28")
    assert parse_date_range("2011 - 2015") == ("2011", "2015")
    assert parse_duration_months("84 months") == 84
    assert parse_duration_months("156 mois") == 156
    assert parse_duration_months("5 ans") == 60
    assert parse_duration_months("none") is None


@pytest.mark.parametrize(
    ("text", "status"),
    [("Active", "active"), ("En exécution", "active"), ("Ongoing", "active"), ("En cours", "active"),
     ("Closed", "closed"), ("Clôturé", "closed"), ("Completed", "closed"), ("Terminé", "closed"),
     ("Pipeline", "planned"), ("En préparation", "planned"), ("Planned", "planned"), ("Blue", None)],
)
def test_parse_status(text: str, status: str | None) -> None:
    assert parse_status(text) == status


def test_countries() -> None:
    assert normalize_country("Cambodge") == "Cambodia"
    assert normalize_country("Lao PDR") == "Laos"
    assert normalize_country("SÉNÉGAL") == "Senegal"
    assert normalize_country("RDC") == "DR Congo"
    assert normalize_country("Atlantis") == "Atlantis"
    assert find_country("Projet d'appui au Burundi et au Burundi, visite au Rwanda") == "Burundi"
    assert find_country("Guinée-Bissau: projet") == "Guinea-Bissau"
    assert find_country("nothing here") is None


def test_seed_000_closed_laos() -> None:
    m = seed("000")
    assert m["country"] == "Laos"
    assert m["status"] == "closed"
    assert m["budget"] == 20850000.0 and m["currency"] == "EUR"
    assert (m["start"], m["end"], m["duration_months"]) == ("2007-12-20", "2013-12-31", 72)
    assert m["agency"] == "Asia Office"
    assert m["partner"] == "Ministry of Health (MOH)"
    assert m["funders"] == [
        {"name": "Luxembourg Government", "amount": 18850000.0, "currency": "EUR"},
        {"name": "Local Contribution", "amount": 2000000.0, "currency": "EUR"},
    ]
    assert m["years"] == list(range(2007, 2014))


def test_seed_001() -> None:
    m = seed("001")
    assert m["country"] == "Laos"
    assert m["budget"] == 28400000.0 and m["currency"] == "EUR"
    assert (m["start"], m["end"], m["duration_months"]) == ("2014-01", "2021-01", 84)
    assert m["agency"] == "Vientiane Regional Office"
    assert m["partner"] == "Lao Ministry of Health"
    assert m["funders"] == [
        {"name": "Luxembourg Government", "amount": 25400000.0, "currency": "EUR"},
        {"name": "Government of Laos", "amount": 3000000.0, "currency": "EUR"},
    ]
    assert m["years"] == list(range(2014, 2022))
    assert "status" not in m


def test_seed_002_french() -> None:
    m = seed("002")
    assert m["country"] == "Kosovo"
    assert (m["start"], m["end"], m["duration_months"]) == ("2016-01-01", "2028-12-31", 156)
    assert m["status"] == "active"
    assert m["budget"] == 29110000.0 and m["currency"] == "EUR"
    names = [f["name"] for f in m["funders"]]
    assert names[0] == "Luxembourg"
    assert m["funders"][1]["amount"] == 23350000.0
    assert m["funders"][1]["name"].startswith("Ministère des Affaires étrangères")


def test_seed_003_country_fallback() -> None:
    m = seed("003")
    assert m == {"country": "Cambodia"}


def test_seed_004_usd_donors() -> None:
    m = seed("004")
    assert m["country"] == "Laos"
    assert (m["start"], m["end"], m["status"]) == ("2012-02", "2015-12", "active")
    assert m["years"] == [2012, 2013, 2014, 2015]
    funders = {f["name"]: (f["amount"], f["currency"]) for f in m["funders"]}
    assert funders["Swiss Agency for Development and Cooperation (SDC)"] == (4000000.0, "USD")
    assert funders["Republic of Korea"] == (2000000.0, "USD")
    assert funders["UNCDF"] == (1300000.0, "USD")
    assert funders["United Nations Development Programme (UNDP)"] == (400000.0, "USD")
    assert len(funders) == 6
    assert "budget" not in m


def test_inline_and_table_labels() -> None:
    text = (
        "Pays : Sénégal\n"
        "Statut | Clôturé\n"
        "Budget total : 1,3 million EUR\n"
        "Date de début: 1er mars 2015\n"
        "Date de fin: 28 février 2019\n"
        "Bailleurs de fonds\n"
        "- Luxembourg : 1 000 000 EUR\n"
        "- Union européenne : 300 000 EUR\n"
        "\n"
        "Contexte\n"
    )
    m = extract_metadata(text)
    assert m["country"] == "Senegal"
    assert m["status"] == "closed"
    assert m["budget"] == 1300000.0 and m["currency"] == "EUR"
    assert (m["start"], m["end"]) == ("2015-03-01", "2019-02-28")
    assert m["years"] == [2015, 2016, 2017, 2018, 2019]
    assert m["funders"] == [
        {"name": "Luxembourg", "amount": 1000000.0, "currency": "EUR"},
        {"name": "Union européenne", "amount": 300000.0, "currency": "EUR"},
    ]


def test_heading_followed_by_prose_is_not_a_value() -> None:
    text = "Budget\nThe budget of the programme was revised several times during the second phase of 2019.\n"
    assert "budget" not in extract_metadata(text)


def test_empty_text() -> None:
    assert extract_metadata("") == {}
