"""Fit the answer reader (``aidsearch.reader``) on the train part of the public QA sets.

``python -m aidsearch.train_reader --qa eval/qa [--epochs 3] [--nulls 0.5] [--out FILE]`` adapts the bundled encoder
with low-rank updates of its linear layers (rank ``--rank``) and a start/end head, trained on the question–paragraph
pairs of the train articles only (the split of ``eval/qa/build.py``), and for a ``--nulls`` share of the questions
also on a paragraph of the same article without the answer, read as "no answer" (on the first token); it writes
them with the data hash and the figures reached on the validation articles. Seeded: the same data and the same
thread count give the same weights. ``--evaluate`` prints those figures for the weights in ``--out``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .chunk import passage_sentences
from .config import Settings
from .embed import tokenizer_for
from .evaluate import auc, split_part
from .reader import READER_FILE, Reader, load_reader, token_logits
from .spans import token_f1
from .train import data_hash

VALIDATION_SHARE = 0.4


@dataclass(frozen=True)
class QAExample:
    """A question over one paragraph with the character range of its first gold answer; ``others``: the other
    paragraphs of its article."""

    set: str
    question: str
    text: str
    answers: tuple[str, ...]
    start: int
    end: int
    others: tuple[str, ...] = ()


def load_qa(folder: Path) -> dict[str, list[QAExample]]:
    """The examples of every ``<set>_dev_{paragraphs,questions}.jsonl.gz`` pair in ``folder``, by part."""
    parts: dict[str, list[QAExample]] = {"train": [], "validation": []}
    for questions in sorted(folder.glob("*_dev_questions.jsonl.gz")):
        name = questions.name.removesuffix("_dev_questions.jsonl.gz")
        with gzip.open(folder / f"{name}_dev_paragraphs.jsonl.gz", "rt", encoding="utf-8") as f:
            paragraphs = {p["para_id"]: p["text"] for p in map(json.loads, f)}
        articles: dict[str, list[str]] = {}
        for pid in paragraphs:
            articles.setdefault(pid.rsplit("-p", 1)[0], []).append(pid)
        with gzip.open(questions, "rt", encoding="utf-8") as f:
            for q in map(json.loads, f):
                article = q["para_id"].rsplit("-p", 1)[0]
                start = int(q["answer_starts"][0])
                others = tuple(paragraphs[p] for p in articles[article] if p != q["para_id"])
                parts[split_part(article, VALIDATION_SHARE)].append(
                    QAExample(name, q["question"], paragraphs[q["para_id"]], tuple(q["answers"]), start,
                              start + len(q["answers"][0]), others))
    return parts


def training_items(reader: Reader, examples: Sequence[QAExample]) -> list[dict[str, Any]]:
    """The first input window of each example that holds its whole answer, with the answer's token positions."""
    items = []
    for ex in examples:
        for item in reader.encode(ex.question, ex.text):
            offs = item["offsets"]
            starts = [i for i, o in enumerate(offs) if o and o[0] <= ex.start < o[1]]
            ends = [i for i, o in enumerate(offs) if o and o[0] < ex.end <= o[1]]
            if starts and ends and ends[0] >= starts[0]:
                items.append({**item, "start": starts[0], "end": ends[0]})
                break
    return items


def null_items(reader: Reader, examples: Sequence[QAExample], share: float, seed: int = 0) -> list[dict[str, Any]]:
    """For a seeded ``share`` of the examples, its question over a paragraph of the same article that holds none of
    its answers (the same subject, the fact absent), labelled "no answer": start and end on the first token."""
    rng = random.Random(seed)
    items = []
    for ex in examples:
        siblings = [t for t in ex.others if not any(a.strip().lower() in t.lower() for a in ex.answers)]
        if siblings and rng.random() < share:
            items.append({**reader.encode(ex.question, rng.choice(siblings))[0], "start": 0, "end": 0})
    return items


def add_lora(model: Any, rank: int, alpha: float, seed: int) -> dict[str, Any]:
    """Give every linear layer of the encoder a trainable low-rank update ``scale · B A`` (B starts at zero, so
    the adapted model starts as the bundled one); the base weights are frozen."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    adapters: dict[str, Any] = {}
    scale = alpha / rank
    for name, module in list(model.named_modules()):
        if not (isinstance(module, torch.nn.Linear) and name.startswith("encoder.")):
            continue
        a = torch.nn.Parameter(torch.empty(rank, module.in_features).uniform_(-1, 1, generator=gen) /
                               math.sqrt(module.in_features))
        b = torch.nn.Parameter(torch.zeros(module.out_features, rank))
        adapters[name] = (a, b)

        def forward(x, module=module, a=a, b=b):
            return torch.nn.functional.linear(x, module.weight, module.bias) + scale * ((x @ a.T) @ b.T)

        module.forward = forward  # type: ignore[method-assign]
    return adapters


def mean_loss(reader: Reader, items: Sequence[dict[str, Any]], batch: int = 16) -> float:
    """The mean start/end cross-entropy of ``reader`` on training items (lower is better)."""
    import torch

    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(items), batch):
            part = items[i:i + batch]
            starts, ends = token_logits(reader.model, reader.head, part, reader.tokenizer.pad_token_id, reader.null)
            total += float(torch.nn.functional.cross_entropy(starts, torch.tensor([it["start"] for it in part]),
                                                             reduction="sum"))
            total += float(torch.nn.functional.cross_entropy(ends, torch.tensor([it["end"] for it in part]),
                                                             reduction="sum"))
    return total / (2 * max(len(items), 1))


def evaluate_reader(reader: Reader, examples: Sequence[QAExample], seed: int = 0) -> dict[str, float]:
    """Over ``examples``: how often the best-scored sentence of the paragraph holds a gold answer, the exact match
    and word F1 of the best span, and, for a reader that can say "no answer", how well its answer margin tells the
    question's paragraph from a paragraph of the same article without the answer (ROC AUC)."""
    if not examples:
        return {}
    sentence, exact, f1 = 0, 0, 0.0
    margins: list[float] = []
    labels: list[bool] = []
    rng = random.Random(seed)
    fold = lambda s: " ".join(s.lower().split())  # noqa: E731
    for ex in examples:
        logits = reader.logits(ex.question, [ex.text])[0]
        sents = passage_sentences(ex.text)
        scores = logits.span_scores([(s.start, s.end) for s in sents])
        best = sents[int(np.argmax(scores))]
        sentence += any(fold(a) in fold(ex.text[best.start:best.end]) for a in ex.answers)
        span = logits.best_span()
        text = ex.text[span[0]:span[1]] if span else ""
        exact += any(fold(a) == fold(text) for a in ex.answers)
        f1 += max(token_f1(text, a) for a in ex.answers)
        siblings = [t for t in ex.others if not any(fold(a) in fold(t) for a in ex.answers)]
        own = logits.answer_margin()
        if own is not None and siblings:
            other = reader.logits(ex.question, [rng.choice(siblings)])[0].answer_margin()
            if other is not None:
                margins += [own, other]
                labels += [True, False]
    n = len(examples)
    out = {"questions": n, "sentence_has_answer": round(sentence / n, 4), "exact": round(exact / n, 4),
           "f1": round(f1 / n, 4)}
    if margins:
        out["no_answer_auc"] = round(auc(margins, labels), 4)
        out["no_answer_pairs"] = len(labels) // 2
    return out


def train_reader(folder: Path, train: Sequence[QAExample], *, rank: int = 8, epochs: float = 2.0, batch: int = 16,
                 lr: float = 1e-3, seed: int = 0, nulls: float = 0.0,
                 log: Callable[[str], None] = lambda _: None) -> tuple[Reader, dict[str, Any], dict[str, Any]]:
    """Fit adapters and head on ``train`` (with "no answer" examples for a ``nulls`` share of them); the reader
    (weights merged in place), the tensors to save and their settings."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
    tokenizer = tokenizer_for(folder)
    head = torch.nn.Linear(model.config.hidden_size, 2)
    adapters = add_lora(model, rank, 2.0 * rank, seed)
    reader = Reader(model, tokenizer, head, {})
    items = training_items(reader, train) + (null_items(reader, train, nulls, seed) if nulls else [])
    params = [p for pair in adapters.values() for p in pair] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = int(math.ceil(len(items) / batch) * epochs)
    warmup = max(1, min(20, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup)
                                              * max(0.0, 1 - s / max(steps, 1)))
    rng = random.Random(seed)
    model.train()
    step, started = 0, time.monotonic()
    while step < steps:
        order = list(range(len(items)))
        rng.shuffle(order)
        order.sort(key=lambda i: len(items[i]["input_ids"]) // 32)  # similar lengths together, shuffled within
        batches = [order[i:i + batch] for i in range(0, len(order), batch)]
        rng.shuffle(batches)
        for chosen in batches[: steps - step]:
            part = [items[i] for i in chosen]
            starts, ends = token_logits(model, head, part, tokenizer.pad_token_id, null=nulls > 0)
            loss = (torch.nn.functional.cross_entropy(starts, torch.tensor([it["start"] for it in part])) +
                    torch.nn.functional.cross_entropy(ends, torch.tensor([it["end"] for it in part]))) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 10 == 0 or step == steps:
                log(f"step {step}/{steps} loss {loss.item():.3f} ({time.monotonic() - started:.0f} s)")
    model.eval()
    scale = 2.0
    tensors: dict[str, Any] = {"head.weight": head.weight.detach().clone(), "head.bias": head.bias.detach().clone()}
    with torch.no_grad():
        for name, (a, b) in adapters.items():
            tensors[f"{name}.lora_a"] = a.detach().clone()
            tensors[f"{name}.lora_b"] = b.detach().clone()
            module = model.get_submodule(name)
            module.weight += scale * b @ a
            del module.forward  # back to the plain layer, now with the update merged
    settings = {"rank": rank, "scale": scale, "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
                "examples": len(items), "steps": steps, **({"nulls": nulls} if nulls else {})}
    reader.info = {"settings": settings}
    return reader, tensors, settings


def save_reader(path: Path, tensors: dict[str, Any], info: dict[str, Any]) -> None:
    """Write the adapters (half precision) and head with ``info`` as metadata, atomically."""
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    half = {k: (v if k.startswith("head.") else v.to(torch.float16)).contiguous() for k, v in tensors.items()}
    save_file(half, str(tmp), metadata={"scale": str(info["settings"]["scale"]), "info": json.dumps(info)})
    tmp.replace(path)


def validate(reader: Reader, examples: Sequence[QAExample]) -> dict[str, dict[str, float]]:
    """``evaluate_reader`` on each set of ``examples``."""
    by_set: dict[str, list[QAExample]] = {}
    for ex in examples:
        by_set.setdefault(ex.set, []).append(ex)
    return {name: evaluate_reader(reader, exs) for name, exs in sorted(by_set.items())}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa", type=Path, default=Path("eval/qa"), help="folder of the public QA sets")
    parser.add_argument("--out", type=Path, default=READER_FILE)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--nulls", type=float, default=0.5,
                        help='share of train questions also read over a paragraph of their article without the answer '
                             '("no answer")')
    parser.add_argument("--limit", type=int, default=0, help="train on the first N train examples only")
    parser.add_argument("--evaluate", action="store_true",
                        help="only print the validation figures of the reader in --out (default: the committed one)")
    args = parser.parse_args(argv)
    from .embed import model_path

    folder = model_path(Settings())
    assert folder is not None
    parts = load_qa(args.qa)
    train = parts["train"][: args.limit] if args.limit else parts["train"]
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.evaluate:
        loaded = load_reader(folder, args.out)
        if loaded is None:
            sys.exit(f"aidsearch: no reader weights at {args.out}")
        print(json.dumps({"reader": str(args.out), "validation": validate(loaded, parts["validation"])}, indent=1))
        return
    reader, tensors, settings = train_reader(folder, train, rank=args.rank, epochs=args.epochs, nulls=args.nulls,
                                             log=say)
    validation = validate(reader, parts["validation"])
    info = {"data": data_hash(list(args.qa.glob("*_dev_*.jsonl.gz"))), "train": len(train), "settings": settings,
            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"), "validation": validation}
    save_reader(args.out, tensors, info)
    print(json.dumps({"out": str(args.out), "validation": validation}, indent=1))


if __name__ == "__main__":
    main()
