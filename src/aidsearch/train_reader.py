"""Fit the answer reader (``aidsearch.reader``) on the train part of the public QA sets.

``python -m aidsearch.train_reader --qa eval/qa [--epochs 2] [--out FILE]`` adapts the bundled encoder with low-rank
updates of its linear layers (rank ``--rank``) and a start/end head, trained on the question–paragraph pairs of the
train articles only (the split of ``eval/qa/build.py``), and writes them with the data hash and the figures reached on
the validation articles. Seeded: the same data and the same thread count give the same weights.

``python -m aidsearch.train_reader --qa eval/qa --answer-head`` then fits the answer head of the committed reader
(``params/reader_answer.json``): a logistic model over the reader's states that tells a question's own paragraph
from a paragraph of the same article without the answer and from a paragraph of another article.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .chunk import passage_sentences
from .config import Settings
from .evaluate import split_part
from .linear import fit_binary
from .reader import ANSWER_FEATURES, ANSWER_FILE, READER_FILE, Reader, load_reader, token_logits
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
            starts, ends, _ = token_logits(reader.model, reader.head, part, reader.tokenizer.pad_token_id)
            total += float(torch.nn.functional.cross_entropy(starts, torch.tensor([it["start"] for it in part]),
                                                             reduction="sum"))
            total += float(torch.nn.functional.cross_entropy(ends, torch.tensor([it["end"] for it in part]),
                                                             reduction="sum"))
    return total / (2 * max(len(items), 1))


def evaluate_reader(reader: Reader, examples: Sequence[QAExample]) -> dict[str, float]:
    """Over ``examples``: how often the best-scored sentence of the paragraph holds a gold answer, and the exact
    match and word F1 of the best span."""
    if not examples:
        return {}
    sentence, exact, f1 = 0, 0, 0.0
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
    n = len(examples)
    return {"questions": n, "sentence_has_answer": round(sentence / n, 4), "exact": round(exact / n, 4),
            "f1": round(f1 / n, 4)}


def train_reader(folder: Path, train: Sequence[QAExample], *, rank: int = 8, epochs: float = 2.0, batch: int = 16,
                 lr: float = 1e-3, seed: int = 0,
                 log: Callable[[str], None] = lambda _: None) -> tuple[Reader, dict[str, Any], dict[str, Any]]:
    """Fit adapters and head on ``train``; the reader (weights merged in place), the tensors to save and their
    settings."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    head = torch.nn.Linear(model.config.hidden_size, 2)
    adapters = add_lora(model, rank, 2.0 * rank, seed)
    reader = Reader(model, tokenizer, head, {})
    items = training_items(reader, train)
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
            starts, ends, _ = token_logits(model, head, part, tokenizer.pad_token_id)
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
                "examples": len(items), "steps": steps}
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


def answer_pairs(examples: Sequence[QAExample], seed: int = 0) -> list[tuple[QAExample, str, bool]]:
    """Each example with its own paragraph (answers), and one paragraph that does not: of its article, without any
    of its answers, for every other question that has one; else of another article."""
    rng = random.Random(seed)
    pairs: list[tuple[QAExample, str, bool]] = []
    for i, ex in enumerate(examples):
        pairs.append((ex, ex.text, True))
        siblings = [t for t in ex.others if not any(a in t for a in ex.answers)]
        if siblings and i % 2 == 0:
            pairs.append((ex, rng.choice(siblings), False))
        else:
            stranger = next((o for o in (rng.choice(examples) for _ in range(20))
                             if o.text != ex.text and o.text not in ex.others), None)
            if stranger is not None:
                pairs.append((ex, stranger.text, False))
    return pairs


def answer_rows(reader: Reader, pairs: Sequence[tuple[QAExample, str, bool]], batch: int = 16,
                log: Callable[[str], None] = lambda _: None) -> tuple[np.ndarray, np.ndarray]:
    """The answer-head features of each pair's first input window, and its label."""
    import torch

    items = [reader.encode(ex.question, text)[0] for ex, text, _ in pairs]
    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    x = np.zeros((len(items), len(ANSWER_FEATURES)))
    started = time.monotonic()
    with torch.inference_mode():
        for b in range(0, len(order), batch):
            chosen = order[b:b + batch]
            x[chosen] = token_logits(reader.model, reader.head, [items[i] for i in chosen],
                                     reader.tokenizer.pad_token_id)[2]
            if (b // batch) % 20 == 0:
                log(f"answer rows {b + len(chosen)}/{len(items)} ({time.monotonic() - started:.0f} s)")
    return x, np.array([label for _, _, label in pairs])


def fit_answer_head(reader: Reader, train: Sequence[QAExample], validation: Sequence[QAExample], *,
                    l2: float = 0.05, log: Callable[[str], None] = lambda _: None):
    """The answer head fitted on pairs of the train examples, each set counting alike, with its accuracy and
    ranking quality (AUC) on pairs of the validation examples, by set."""
    from .evaluate import auc

    pairs = answer_pairs(train)
    x, y = answer_rows(reader, pairs, log=log)
    sets = np.array([ex.set for ex, _, _ in pairs])
    weight = np.array([1.0 / np.mean(sets == s) for s in sets])
    model = fit_binary(x, y, ANSWER_FEATURES, l2=l2, steps=800, sample_weight=weight)
    figures: dict[str, dict[str, float]] = {}
    for name in sorted({ex.set for ex in validation}):
        chosen = [ex for ex in validation if ex.set == name][:VALIDATION_QUESTIONS]
        vx, vy = answer_rows(reader, answer_pairs(chosen), log=log)
        p = model.probability(vx)
        figures[name] = {"pairs": len(vy), "accuracy": round(float(np.mean((p >= 0.5) == vy)), 4),
                         "auc": round(auc(p, vy), 4)}
    return model, {"pairs": len(y), "l2": l2, "validation": figures}


VALIDATION_QUESTIONS = 200  # per set, for the answer head's validation figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa", type=Path, default=Path("eval/qa"), help="folder of the public QA sets")
    parser.add_argument("--out", type=Path, default=READER_FILE)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N train examples only")
    parser.add_argument("--answer-head", action="store_true",
                        help="fit only the answer head of the committed reader (written to params/reader_answer.json)")
    args = parser.parse_args(argv)
    from .embed import model_path

    folder = model_path(Settings())
    assert folder is not None
    parts = load_qa(args.qa)
    train = parts["train"][: args.limit] if args.limit else parts["train"]
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.answer_head:
        base = load_reader(folder)
        if base is None:
            sys.exit(f"aidsearch: no reader weights at {READER_FILE}; run python -m aidsearch.train_reader first")
        head, figures = fit_answer_head(base, train, parts["validation"], log=say)
        out = args.out if args.out != READER_FILE else ANSWER_FILE
        head_info = {"data": data_hash(list(args.qa.glob("*_dev_*.jsonl.gz"))), "train": len(train), **figures,
                     "trained": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        replace(head, info=head_info).save(out)
        print(json.dumps({"out": str(out), "validation": figures["validation"]}, indent=1))
        return
    reader, tensors, settings = train_reader(folder, train, rank=args.rank, epochs=args.epochs, log=say)
    by_set: dict[str, list[QAExample]] = {}
    for ex in parts["validation"]:
        by_set.setdefault(ex.set, []).append(ex)
    validation = {name: evaluate_reader(reader, exs) for name, exs in sorted(by_set.items())}
    info = {"data": data_hash(list(args.qa.glob("*_dev_*.jsonl.gz"))), "train": len(train), "settings": settings,
            "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"), "validation": validation}
    save_reader(args.out, tensors, info)
    print(json.dumps({"out": str(args.out), "validation": validation}, indent=1))


if __name__ == "__main__":
    main()
