"""aidsearch: ask in English or French, get answers with cited passages from aid-project documents."""
from __future__ import annotations

__version__ = "0.1.0"
