"""Retrieval and answers, earlier and current answerer side by side in one run, on the validation parts and the
held-out set (never on the train parts the learned stages were fitted on).

Usage: .venv/bin/python benchmarks/bench_answers.py [--out docs/benchmarks/answers.md] [--limit N] [--config NAME]...
                                                   [--reader WEIGHTS[=W]]...

Needs the indexes that ``make eval-data`` builds. Configurations: "earlier" = reciprocal rank fusion and the
rule-based answerer (``retrieval hybrid``, ``answerer rules``); "learned" = learned fusion, answer ranker and
span, field answers and abstention (``retrieval learned``, ``answerer learned``); "reader" = the same with the
answer reader's span scores weighed with the learned sentence scores to choose the quoted sentence, and its span
(``answerer reader``), and its answer margin weighed in the abstention; "reader, abstention without margin" = the
same with the learned abstention alone; "reader, int8" = "reader" with the reader's linear layers in int8
(``reader_quantize int8``); "reader alone" = the reader's choice alone; "dense" and "bm25" = one
ranking alone, for the fusion comparison. ``--reader WEIGHTS=W`` adds "reader" with other reader weights (e.g. an
earlier revision's, from ``git show REV:src/aidsearch/params/reader.safetensors``) and span weight W. The Markdown
report goes to --out, the figures as JSON beside it; ``--render`` rewrites the Markdown from that JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from procstat import ForeignCpu  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "answers.md"
COMMAND = "benchmarks/bench_answers.py"


@dataclass(frozen=True)
class EvalSet:
    name: str
    kind: str
    index: str
    questions: str


SETS = (
    EvalSet("PIAF validation", "validation", "eval/qa/build/index-piaf", "eval/qa/build/piaf/validation.jsonl"),
    EvalSet("XQuAD validation", "validation", "eval/qa/build/index-xquad", "eval/qa/build/xquad/validation.jsonl"),
    EvalSet("development validation", "validation", "eval/index-e5", "eval/dev/validation.jsonl"),
    EvalSet("held-out", "held-out", "eval/index-e5", "eval/heldout.jsonl"),
)
CONFIGS = {"earlier": ("hybrid", "rules"), "learned": ("learned", "learned"), "reader alone": ("learned", "reader"),
           "reader": ("learned", "reader"), "reader, abstention without margin": ("learned", "reader"),
           "reader, passage of the best sentence": ("learned", "reader"), "reader, int8": ("learned", "reader"),
           "reader, PyTorch": ("learned", "reader"),
           "dense": ("dense", "learned"), "bm25": ("bm25", "learned")}
RETRIEVAL_ONLY = ("dense", "bm25")
_MARKERS = re.compile(r"\s*\[\d+\]")


def answer_words(text: str | None) -> int:
    return len(_MARKERS.sub("", text or "").split())


def learned_models(revision: str) -> dict[str, Any]:
    """The fusion, sentence, abstention and span models committed at ``revision``, over today's feature lists, and
    the reader's weights against them (``reader_weight``, ``passage_weight``, ``margin_bound``)."""
    from aidsearch.learned import MODELS
    from aidsearch.linear import LinearModel

    def committed(name: str) -> dict[str, Any]:
        return json.loads(subprocess.run(["git", "show", f"{revision}:src/aidsearch/params/{name}.json"], cwd=ROOT,
                                         check=True, capture_output=True, text=True).stdout)

    out: dict[str, Any] = {name: LinearModel.from_dict(committed(name)).over(MODELS[name][0])
                           for name in ("fusion", "sentence", "abstain", "span")}
    passage = committed("reader_passage")
    out.update(reader_weight=committed("reader_weight")["weight"], passage_weight=passage["weight"],
               margin_bound=passage.get("margin_bound", math.inf))
    return out


def run(limit: int | None, configs: dict[str, tuple[str, str]] = CONFIGS,
        readers: dict[str, tuple[Path, float | None]] | None = None,
        revisions: dict[str, str] | None = None) -> dict[str, Any]:
    """Every configuration on every set; ``readers``: configurations that read with other reader weights, and their
    own weight against the learned sentence scores (None: the committed one); ``revisions``: configurations that
    rank and answer with the learned models committed at a revision."""
    from aidsearch.api import open_index
    from aidsearch.embed import model_path
    from aidsearch.evaluate import evaluate, load_questions
    from aidsearch.reader import load_reader
    from aidsearch.spans import token_f1

    results: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    earlier = {name: learned_models(rev) for name, rev in (revisions or {}).items()}
    embedder = None
    for s in SETS:
        questions = load_questions(ROOT / s.questions)[:limit]
        base = open_index(ROOT / s.index, embedder=embedder)
        embedder = base.embedder
        results[s.name] = {"kind": s.kind, "questions_file": s.questions, "configs": {}}
        for name, (mode, answerer) in configs.items():
            quantize = "int8" if name == "reader, int8" else base.settings.reader_quantize
            runtime = "torch" if name == "reader, PyTorch" else base.settings.query_runtime
            ix = type(base)(replace(base.settings, answerer=answerer, reader_quantize=quantize, query_runtime=runtime),
                            embedder)
            if name == "reader alone":
                ix.models = replace(ix.answer_models(), reader_weight=None)
            if name == "reader, abstention without margin":
                ix.models = replace(ix.answer_models(), reader_abstain=None)
            if name == "reader, passage of the best sentence":
                ix.models = replace(ix.answer_models(), passage_weight=None)
            if name in earlier:
                m = earlier[name]
                ix.retriever().fusion = m["fusion"]
                ix.models = replace(ix.answer_models(), sentence=m["sentence"], abstain=m["abstain"], span=m["span"],
                                    min_probability=float(m["abstain"].info["threshold"]),
                                    reader_weight=m["reader_weight"], passage_weight=m["passage_weight"],
                                    margin_bound=m["margin_bound"])
            if readers and name in readers:
                path, weight = readers[name]
                if name not in loaded:
                    loaded[name] = load_reader(model_path(ix.settings), path, onnx_dir=ix.settings.cache_dir / "onnx"
                                               if ix.settings.query_runtime == "onnx" else None)
                models = replace(ix.answer_models(), reader=loaded[name])
                ix.models = models if weight is None else replace(models, reader_weight=weight)
            report = evaluate(ix, questions, mode=mode, questions_file=s.questions, index_dir=s.index,
                              answers=name not in RETRIEVAL_ONLY)
            groups = {g.group: {"questions": g.questions, "answerable": g.answerable, "recall_1": g.recall_1,
                                "recall_5": g.recall_5, "mrr_10": g.mrr_10, "cited_first": g.cited_first,
                                "accuracy": g.accuracy,
                                "grounded": g.grounded_accuracy, "no_answer_precision": g.no_answer.precision,
                                "no_answer_recall": g.no_answer.recall} for g in report.groups}
            found = [answer_words(r.answer) for r in report.results if r.found]
            right = [r for r in report.results if r.correct]
            marked = [max(token_f1(" ".join(r.highlights), a) for a in r.answers) for r in right if r.highlights]
            results[s.name]["configs"][name] = {"mode": mode, "answerer": answerer, "groups": groups,
                                                "median_answer_words": statistics.median(found) if found else None,
                                                "highlighted": len(marked) / len(right) if right else None,
                                                "highlight_f1": statistics.mean(marked) if marked else None,
                                                "seconds": round(report.seconds, 1)}
            print(f"{s.name} {name}: R@1 {groups['overall']['recall_1']}, accuracy {groups['overall']['accuracy']}",
                  file=sys.stderr, flush=True)
    return results


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def render(data: dict[str, Any]) -> str:
    lines = [
        "# Answers and retrieval: earlier and current answerer side by side",
        "",
        f"Command: `.venv/bin/python {data['command']}`; {data['date']}; {data['machine']}; "
        f"CPU used by other processes during the run: {data['contention']}.",
        "",
        "The learned stages were fitted on the train parts only (PIAF and XQuAD articles, development documents: "
        "see `eval/README.md`). Every figure here is from a **validation** part or the **held-out** set, never "
        "from data anything was fitted on, except that the rule answerer's constants (*earlier*) were tuned on the "
        "100 development questions, development validation included. *earlier*: reciprocal rank fusion and the "
        "rule-based answerer (`retrieval hybrid`, `answerer rules`); *learned*: learned fusion, answer sentence "
        "and span, fiche-field answers and learned abstention; *reader alone*: the same with the answer reader (fitted "
        "on the train articles of PIAF and XQuAD) choosing the quoted sentence and its span; *reader*: the reader's "
        "span scores weighed with the learned sentence scores (the weight chosen on the train parts: "
        "`params/reader_weight.json`), and when `params/reader_abstain.json` is present (`python -m aidsearch.train "
        "--reader-abstain`) the abstention features and the reader's answer margin weighed together in the "
        "abstention; *reader, abstention without margin*: the same with the learned abstention alone; *reader, int8*: "
        "*reader* with the reader's attention projections and first feed-forward layers in 8-bit integers "
        "(`reader_quantize int8`); *reader, PyTorch*: *reader* with the reader run by PyTorch instead of ONNX "
        "Runtime (`query_runtime torch` for the reader; questions embedded alike); *reader FILE, weight W*: the same "
        "with other reader weights (FILE, e.g. an earlier revision's) and span weight W; *reader, learned models "
        "of REV*: *reader* with the fusion, answer sentence, abstention and span models committed at revision REV, "
        "and the reader's weights fitted with them; "
        "*dense* / *bm25*: "
        "one ranking alone. *ms/question*: mean time per question of the whole evaluation (retrieval and answer). "
        "Retrieval is scored on documents (R@1, R@5); an answer "
        "is right when it contains an expected string (numbers compared without thousands separators, dates and "
        "durations in either language). *span shown*: share of right answers with the answer itself highlighted; "
        "*span F1*: word F1 of that highlight against the expected string.",
    ]
    for set_name, entry in data["sets"].items():
        configs = entry["configs"]
        lines += ["", f"## {set_name} ({entry['kind']}, `{entry['questions_file']}`)", "",
                  "| configuration | group | questions | R@1 | R@5 | MRR@10 | cited first | answer acc. | "
                  "acc. + cited | no-answer P | no-answer R | median answer words | span shown | span F1 | "
                  "ms/question |",
                  "|" + "---|" * 15]
        for name, c in configs.items():
            for group, g in c["groups"].items():
                if not g["questions"]:
                    continue
                answers = name not in RETRIEVAL_ONLY
                words = c["median_answer_words"] if answers and group == "overall" else None
                shown = c.get("highlighted") if answers and group == "overall" else None
                span = c.get("highlight_f1") if answers and group == "overall" else None
                ms = f"{1000 * c['seconds'] / g['questions']:.0f}" if group == "overall" else "–"
                lines.append(
                    f"| {name} | {group} | {g['questions']} | {_f(g['recall_1'])} | {_f(g['recall_5'])} | "
                    f"{_f(g['mrr_10'])} | {_f(g.get('cited_first')) if answers else '–'} | "
                    f"{_f(g['accuracy']) if answers else '–'} | "
                    f"{_f(g['grounded']) if answers else '–'} | {_f(g['no_answer_precision']) if answers else '–'} | "
                    f"{_f(g['no_answer_recall']) if answers else '–'} | {'–' if words is None else words} | "
                    f"{_f(shown)} | {_f(span)} | {ms} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--render", action="store_true", help="rewrite the Markdown from the JSON beside it")
    parser.add_argument("--config", action="append", choices=list(CONFIGS),
                        help="measure only these configurations (repeatable; default: all)")
    parser.add_argument("--reader", action="append", default=[], metavar="WEIGHTS[=W]",
                        help="also measure \"reader\" with these reader weights, and W as the weight of its span "
                             "scores (repeatable)")
    parser.add_argument("--models", action="append", default=[], metavar="REV",
                        help="also measure \"reader\" with the learned models committed at this git revision "
                             "(repeatable)")
    args = parser.parse_args()
    json_path = args.out.with_suffix(".json")
    if args.render:
        args.out.write_text(render(json.loads(json_path.read_text(encoding="utf-8"))), encoding="utf-8")
        return
    with ForeignCpu() as foreign:
        configs = {n: CONFIGS[n] for n in args.config} if args.config else dict(CONFIGS)
        readers = {}
        for spec in args.reader:
            path, _, weight = spec.partition("=")
            readers[f"reader {Path(path).name}" + (f", weight {weight}" if weight else "")] = \
                (Path(path), float(weight) if weight else None)
        configs.update({name: CONFIGS["reader"] for name in readers})
        revisions = {f"reader, learned models of {rev}": rev for rev in args.models}
        configs.update({name: CONFIGS["reader"] for name in revisions})
        sets = run(args.limit, configs, readers, revisions)
    out = "" if args.out == DEFAULT_OUT else f" --out {os.path.relpath(args.out.resolve(), ROOT)}"
    data = {"command": COMMAND + out + (f" --limit {args.limit}" if args.limit else "") +
            "".join(f" --config '{n}'" for n in args.config or ()) + "".join(f" --reader {p}" for p in args.reader) +
            "".join(f" --models {r}" for r in args.models),
            "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "contention": f"{foreign.share:.0%}", "sets": sets}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    args.out.write_text(render(data), encoding="utf-8")


if __name__ == "__main__":
    main()
