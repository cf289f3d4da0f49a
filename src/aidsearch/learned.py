"""The learned parameters shipped with the package (``params/*.json``, written by ``aidsearch.train``)."""
from __future__ import annotations

import logging
from functools import lru_cache

from .features import ABSTAIN_FEATURES, PASSAGE_FEATURES, SENTENCE_FEATURES
from .linear import PARAMS_DIR, LinearModel, untrained
from .spans import SPAN_FEATURES

log = logging.getLogger(__name__)

MODELS = {
    "fusion": (PASSAGE_FEATURES, "dense_rel"),
    "sentence": (SENTENCE_FEATURES, "sim_rel"),
    "abstain": (ABSTAIN_FEATURES, "dense_z_top"),
    "span": (SPAN_FEATURES, "near_question"),
}


@lru_cache(maxsize=None)
def load_model(name: str) -> LinearModel:
    """The committed parameters of model ``name``; a one-feature stand-in when none are committed or they were
    fitted on another feature list (so the code still runs while a model is being retrained)."""
    features, primary = MODELS[name]
    path = PARAMS_DIR / f"{name}.json"
    if path.exists():
        model = LinearModel.load(path)
        if model.features == tuple(features):
            return model
        log.warning("%s was fitted on other features; using %s alone until it is retrained", path.name, primary)
    return untrained(features, primary)
