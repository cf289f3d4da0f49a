"""Ingestion: find corpus files, extract and clean their text, and build ``Document`` objects.

``decode`` turns bytes into text, ``boilerplate`` tells web-page junk from content, ``clean`` cleans the text of
every format, ``read_text``/``read_html``/``read_pdf``/``read_docx`` read one format each, and ``corpus`` walks
the corpus folder and reads each file into a ``Document``.
"""
from __future__ import annotations

from .boilerplate import is_boilerplate
from .clean import clean_text, guess_title
from .corpus import (SUPPORTED, Skipped, corpus_files, iter_corpus, read_document, read_documents,
                     reading_version)
from .decode import printable, repair_mojibake

__all__ = [
    "SUPPORTED",
    "Skipped",
    "clean_text",
    "corpus_files",
    "guess_title",
    "is_boilerplate",
    "iter_corpus",
    "printable",
    "read_document",
    "read_documents",
    "reading_version",
    "repair_mojibake",
]
