"""Calibrate the similarity a generated sentence needs to the passage it cites (the faithfulness check): on the
hand-written examples of eval/check/examples.jsonl (sentences in English or French that a passage supports, or
not), with the bundled model, the threshold that sorts the most examples right, halfway between the nearest
supported and unsupported similarities. Writes src/aidsearch/params/check.json with the figures it reached."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from aidsearch.api import CHECK_FILE  # noqa: E402
from aidsearch.chunk import passage_sentences  # noqa: E402
from aidsearch.config import load_settings  # noqa: E402
from aidsearch.embed import load_embedder  # noqa: E402

EXAMPLES = ROOT / "eval" / "check" / "examples.jsonl"


def main() -> None:
    rows = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    embedder = load_embedder(load_settings())
    sims = []
    for row in rows:
        units = [s.text for s in passage_sentences(row["passage"])]
        sims.append(float((embedder.encode_passages([row["sentence"]]) @ embedder.encode_passages(units).T).max()))
    labels = np.array([bool(r["supported"]) for r in rows])
    values = np.array(sims)
    cuts = np.unique(values)
    candidates = [(float((cuts[i] + cuts[i + 1]) / 2)) for i in range(len(cuts) - 1)]
    accuracy = [float(((values >= t) == labels).mean()) for t in candidates]
    best = max(accuracy)
    chosen = [t for t, a in zip(candidates, accuracy) if a == best]
    threshold = round(float(np.median(chosen)), 4)
    data = {
        "threshold": threshold,
        "examples": len(rows),
        "accuracy": round(best, 4),
        "supported_min": round(float(values[labels].min()), 4),
        "unsupported_max": round(float(values[~labels].max()), 4),
        "model": embedder.info.name,
        "source": "eval/check/examples.jsonl; benchmarks/calibrate_check.py",
    }
    CHECK_FILE.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(data, indent=2))
    for row, sim in sorted(zip(rows, sims), key=lambda x: x[1]):
        print(f"{sim:.3f} {'+' if row['supported'] else '-'} {row['sentence']}")


if __name__ == "__main__":
    main()
