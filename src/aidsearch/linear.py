"""Small learned linear models: a listwise ranker (softmax over a group of candidates) and a binary classifier,
with their parameters read from and written to JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

PARAMS_DIR = Path(__file__).resolve().parent / "params"


@dataclass(frozen=True)
class LinearModel:
    """``w · standardize(x) + b`` over named features."""

    features: tuple[str, ...]
    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    bias: float = 0.0
    info: dict[str, Any] | None = None

    def scores(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != len(self.features):
            raise ValueError(f"expected {len(self.features)} features, got {x.shape[-1]}")
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Binary models: the probability of the positive class."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.scores(x), -30, 30)))

    def over(self, features: Sequence[str]) -> LinearModel:
        """The same model over ``features``, a list holding all of its own: the others weigh nothing (a model
        fitted before features were added scores as it did)."""
        missing = [f for f in self.features if f not in features]
        if missing:
            raise ValueError(f"feature {missing[0]!r} is not in the new feature list")
        at = {f: i for i, f in enumerate(self.features)}
        weights, mean, scale = np.zeros(len(features)), np.zeros(len(features)), np.ones(len(features))
        for j, f in enumerate(features):
            if f in at:
                weights[j], mean[j], scale[j] = self.weights[at[f]], self.mean[at[f]], self.scale[at[f]]
        return LinearModel(tuple(features), weights, mean, scale, self.bias, self.info)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "weights": [round(float(w), 6) for w in self.weights],
                "mean": [round(float(m), 6) for m in self.mean], "scale": [round(float(s), 6) for s in self.scale],
                "bias": round(float(self.bias), 6), "info": self.info or {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearModel:
        n = len(data["features"])
        weights, mean, scale = (np.asarray(data[k], dtype=np.float64) for k in ("weights", "mean", "scale"))
        if any(a.shape != (n,) for a in (weights, mean, scale)):
            raise ValueError("feature, weight, mean and scale lists differ in length")
        return cls(tuple(data["features"]), weights, mean, scale, float(data.get("bias", 0.0)), data.get("info") or {})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def untrained(features: Sequence[str], primary: str) -> LinearModel:
    """A model that scores by one feature alone (the baseline a trained model must beat)."""
    weights = np.array([1.0 if f == primary else 0.0 for f in features])
    n = len(features)
    return LinearModel(tuple(features), weights, np.zeros(n), np.ones(n))


def _standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-9, scale, 1.0)


def _adam(grad, w: np.ndarray, steps: int, lr: float) -> np.ndarray:
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        g = grad(w)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w


def fit_listwise(groups: Sequence[tuple[np.ndarray, np.ndarray]], features: Sequence[str], *, l2: float = 1e-3,
                 steps: int = 400, lr: float = 0.05, info: dict[str, Any] | None = None,
                 group_weight: Sequence[float] | None = None) -> LinearModel:
    """Fit weights so that, in each group ``(x, positive)``, the softmax of scores puts its mass on the positive
    candidates (maximizes the log of the summed probability of the positives), each group weighted by
    ``group_weight`` (e.g. one weight per question set; alike by default). Groups without a positive or without
    a negative teach nothing and are skipped."""
    weights = [1.0] * len(groups) if group_weight is None else list(group_weight)
    if len(weights) != len(groups):
        raise ValueError(f"expected {len(groups)} group weights, got {len(weights)}")
    kept = [(x, pos.astype(bool), w) for (x, pos), w in zip(groups, weights) if pos.any() and not pos.all()]
    if not kept:
        raise ValueError("no group has both a positive and a negative candidate")
    mean, scale = _standardizer(np.concatenate([x for x, _, _ in kept]))
    xs = [(x - mean) / scale for x, _, _ in kept]
    sizes = np.array([len(x) for x in xs])
    big = np.concatenate(xs)
    pos = np.concatenate([p for _, p, _ in kept])
    gw = np.array([w for _, _, w in kept], dtype=np.float64)
    gw /= gw.mean()
    group = np.repeat(np.arange(len(xs)), sizes)
    n = len(xs)

    def grad(w: np.ndarray) -> np.ndarray:
        s = big @ w
        top = np.full(n, -np.inf)
        np.maximum.at(top, group, s)
        e = np.exp(s - top[group])
        z = np.bincount(group, e, n)
        zp = np.bincount(group, e * pos, n)
        p_all = e / z[group]
        p_pos = np.where(pos, e / zp[group], 0.0)
        return (((p_all - p_pos) * gw[group]) @ big) / n + l2 * w

    w = _adam(grad, np.zeros(big.shape[1]), steps, lr)
    return LinearModel(tuple(features), w, mean, scale, 0.0, info)


def fit_binary(x: np.ndarray, y: np.ndarray, features: Sequence[str], *, l2: float = 1e-3, steps: int = 600,
               lr: float = 0.05, info: dict[str, Any] | None = None,
               sample_weight: np.ndarray | None = None) -> LinearModel:
    """Logistic regression, classes weighted equally (after ``sample_weight``, e.g. one weight per question set)."""
    y = y.astype(float)
    if y.min() == y.max():
        raise ValueError("binary fit needs both classes")
    mean, scale = _standardizer(x)
    xb = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    sw = sw / sw.mean()
    positive = (sw * y).sum() / sw.sum()
    weight = sw * np.where(y > 0, 0.5 / positive, 0.5 / (1 - positive))

    def grad(w: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        g = (weight * (p - y)) @ xb / len(y)
        g[:-1] += l2 * w[:-1]
        return g

    w = _adam(grad, np.zeros(xb.shape[1]), steps, lr)
    return LinearModel(tuple(features), w[:-1], mean, scale, float(w[-1]), info)


def log_softmax(scores: np.ndarray) -> np.ndarray:
    top = scores.max()
    return scores - top - np.log(np.exp(scores - top).sum())
