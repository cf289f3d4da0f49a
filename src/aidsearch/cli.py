"""The ``aidsearch`` command line, on the standard library's argparse so that it starts in a cold Python's time;
errors are printed as one line on stderr with a non-zero exit code (2 for a mistake in the command itself)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

from .config import Settings, load_settings
from .errors import AidsearchError, QueryError
from .query import check_question, parse_filters

RAY_LOCAL = "local"
K_MAX = 100


class UsageError(Exception):
    """A mistake in the command line itself (an unknown option, a bad value, a missing argument): exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _echo(text: str = "", err: bool = False, end: str = "\n") -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + end)
    stream.flush()


def _bold(text: str) -> str:
    """``text`` in bold and underlined on a terminal, unchanged otherwise (a pipe, a file, NO_COLOR)."""
    import os

    return f"\x1b[1m\x1b[4m{text}\x1b[0m" if sys.stdout.isatty() and not os.environ.get("NO_COLOR") else text


def _settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def _emit(data: dict[str, Any] | str, as_json: bool) -> None:
    if as_json:
        _echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _echo(data if isinstance(data, str) else "\n".join(f"{k}: {v}" for k, v in data.items()))


def _count(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {bound}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def model_info(a: argparse.Namespace) -> None:
    """Show the model: name, source, folder, dimension, fingerprint (builds the bundled model on first use), and
    whether generative answers are configured and their model server reachable."""
    from .embed import load_embedder
    from .generate import ChatServer, status

    settings = _settings()
    info = load_embedder(settings).info
    server = ChatServer(settings.llm_url, settings.llm_model, settings.llm_api_key, settings.llm_timeout) \
        if settings.llm_url else None
    _emit({**info.to_dict(), "generation": status(server)}, a.json)


class _Bar:
    """tqdm progress on stderr: documents read, then passages embedded (with their sentences), with the rate and
    the time left."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage not in self.bars:
            label = "reading documents" if stage == "read" else "embedding passages"
            unit = "document" if stage == "read" else "passage"
            self.bars[stage] = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=True,
                                    disable=not sys.stderr.isatty() and stage == "read")
        bar = self.bars[stage]
        bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def index(a: argparse.Namespace) -> None:
    """Build or update the index: only new or changed documents are embedded; removed ones are dropped."""
    from .api import open_index

    settings = _settings(index_dir=a.index_dir, corpus_dir=a.corpus)
    embedder = None
    if a.ray is not None:
        from .distributed import RayEmbedder
        from .embed import load_embedder

        embedder = RayEmbedder(settings, load_embedder(settings), address=None if a.ray == RAY_LOCAL else a.ray,
                               workers=a.ray_workers)
    bar = _Bar()
    try:
        ix = open_index(settings=settings, embedder=embedder, create=True, progress=bar, lock_timeout=a.wait)
        report = ix.created or ix.update(rebuild=a.rebuild, progress=bar, lock_timeout=a.wait)
    finally:
        bar.close()
    data = report.to_dict()
    on_ray = ""
    if embedder is not None:
        embedder.finish()
        data["ray"] = dict(embedder.stats)
        on_ray = (f"; on Ray: {embedder.stats['embedded']} texts embedded, {embedder.stats['resumed']} from an "
                  "earlier run")
    if a.json:
        _emit(data, True)
        return
    for item in report.skipped:
        _echo(f"skipped {item.source}: {item.reason}", err=True)
    state = "index written" if report.written else "index already up to date"
    rate = f", {data['texts_per_second']} texts/s" if data["texts_per_second"] else ""
    rate += on_ray
    _echo(f"{state}: {report.documents} documents, {report.chunks} passages "
          f"({len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
          f"{len(report.skipped)} skipped; {report.embedded_chunks} passages and "
          f"{report.embedded_texts - report.embedded_chunks} sentences embedded in {report.seconds:.1f} s{rate})")


def _open(index_dir: Optional[Path]):
    from .api import open_index

    return open_index(settings=_settings(index_dir=index_dir))


def _check(text: str, filters: Optional[list[str]]) -> None:
    """A bad question or filter is a one-line error before anything is loaded."""
    check_question(text)
    parse_filters(filters)


def _remote(index_dir: Optional[Path], server: Optional[str], local: bool):
    """The running aidsearch server that answers this command, or None to answer here."""
    from .client import find

    if local:
        return None
    settings = _settings(index_dir=index_dir)
    if server or settings.server_url:
        return find(server or settings.server_url, settings.auth, settings.index_dir, named=True)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "localhost", "::") else settings.host
    return find(f"http://{host}:{settings.port}", settings.auth, settings.index_dir, named=False)


def search(a: argparse.Namespace) -> None:
    """The passages that best match QUERY (hybrid dense + keyword search)."""
    _check(a.query, a.filters)
    remote = _remote(a.index_dir, a.server, a.local)
    if remote is not None:
        data = remote.search(a.query, k=a.k, filters=a.filters)
    else:
        data = _open(a.index_dir).search(a.query, k=a.k, filters=a.filters or None).to_dict()
    if a.json:
        _emit(data, True)
        return
    if not data["hits"]:
        _echo("no passage found")
    for hit in data["hits"]:
        page = f" p.{hit['page']}" if hit.get("page") else ""
        _echo(f"[{hit['rank']}] {hit['title']} ({hit['source']}{page}, {hit['lang']}) score {hit['score']:.4f}")
        _echo("    " + " ".join(hit["text"].split())[:300])


def _print_answer(data: dict[str, Any]) -> None:
    """The answer (``Answer.to_dict()``) with its spans in bold, then its numbered sources."""
    from .types import MESSAGES, source_label

    gen = data.get("generation") or {}
    say = MESSAGES.get(data["language"], MESSAGES["en"])
    if gen.get("notice"):
        _echo(f"({gen.get('notice_text') or gen['notice']}: {say['quoting_instead']})", err=True)
    text, pos, parts = data["answer"] or "", 0, []
    for span in data["highlights"]:  # the answer itself in bold
        parts += [text[pos:span["start"]], _bold(text[span["start"]:span["end"]])]
        pos = span["end"]
    _echo("".join(parts) + text[pos:])
    if data["citations"]:
        _echo(f"\n{say['sources']}:")
    for c in data["citations"]:
        _echo(source_label(c["n"], c["title"], c["source"], c.get("page"), c["lang"]))
    if data["mode"] == "generative":
        _echo(f"\n({say['written_by'].format(model=gen.get('model'))})")


def ask(a: argparse.Namespace) -> None:
    """Answer QUESTION with sentences quoted from the documents (or written by the configured model and checked
    against them) and numbered sources."""
    _check(a.question, a.filters)
    remote = _remote(a.index_dir, a.server, a.local)
    if remote is not None:
        data = remote.ask(a.question, k=a.k, filters=a.filters, mode=a.mode)
    else:
        data = _open(a.index_dir).ask(a.question, k=a.k, filters=a.filters or None, answer_mode=a.mode).to_dict()
    if a.json:
        _emit(data, True)
        return
    _print_answer(data)


_END_OF_CHAT = frozenset({"", "quit", "exit"})


def chat(a: argparse.Namespace) -> None:
    """Answer questions read line by line from stdin until an empty line, "quit" or the end of input; a follow-up
    ("and its budget?", "et au Laos ?") is read with the subject of the previous question."""
    from .conversation import FOLLOWUP_LABEL

    parse_filters(a.filters)
    answer = _chat_turns(a.index_dir, a.server, a.local, a.k, a.filters)
    prompt = sys.stdin.isatty()
    while True:
        if prompt:
            _echo("> ", end="")
        line = sys.stdin.readline()
        if not line or line.strip().lower() in _END_OF_CHAT:
            return
        try:
            data = answer(line)
        except QueryError as exc:
            _echo(f"error: {exc}", err=True)
            continue
        if a.json:
            _echo(json.dumps(data, ensure_ascii=False))
            continue
        if data.get("followup_of"):
            _echo(f"({FOLLOWUP_LABEL.get(data['language'], FOLLOWUP_LABEL['en'])}: {data['followup_of']})")
        _print_answer(data)
        _echo()


def _chat_turns(index_dir: Optional[Path], server: Optional[str], local: bool, k: Optional[int],
                filters: Optional[list[str]]):
    """The function that answers one chat line: ``ask --json``'s fields plus ``question``, ``query`` and
    ``followup_of``, from a running server (which keeps the conversation) or from the index loaded here."""
    remote = _remote(index_dir, server, local)
    if remote is not None:
        import uuid

        conversation_id = uuid.uuid4().hex
        return lambda line: remote.ask(check_question(line), k=k, filters=filters, conversation_id=conversation_id)
    from .conversation import Conversation

    ix = _open(index_dir)
    state = {"conversation": Conversation()}

    def answer(line: str) -> dict[str, Any]:
        turn = state["conversation"].turn(check_question(line))
        result = ix.ask(turn.query, k=k, filters=filters or None)
        state["conversation"] = turn.after
        return {**result.to_dict(), "question": turn.question, "query": turn.query, "followup_of": turn.followup_of}

    return answer


def stats(a: argparse.Namespace) -> None:
    """Documents, passages, languages, dates and model of the index."""
    from .store import IndexStore

    manifest = IndexStore(load_settings(index_dir=a.index_dir).index_dir).read_manifest()
    data = {
        "documents": len(manifest.get("documents", {})), "passages": manifest.get("chunks"),
        "languages": manifest.get("languages"), "created": manifest.get("created"), "updated": manifest.get("updated"),
        "model": manifest.get("model", {}).get("name"), "fingerprint": manifest.get("model", {}).get("fingerprint"),
        "chunking": manifest.get("chunking"), "faiss": manifest.get("faiss"), "corpus": manifest.get("corpus"),
        "backend": manifest.get("backend", {"name": "faiss"}),
    }
    _emit(data, a.json)


def eval_questions(a: argparse.Namespace) -> None:
    """Score retrieval (recall, MRR, nDCG of documents), answers and abstentions on a question set."""
    from .evaluate import EvalError, evaluate, load_questions, render_markdown
    from .retrieve import MODES

    if a.mode is not None and a.mode not in MODES:
        raise EvalError(f"unknown mode {a.mode!r}: use one of {', '.join(MODES)}")
    questions = load_questions(a.queries)
    ix = _open(a.index_dir)
    report = evaluate(ix, questions, mode=a.mode, questions_file=str(a.queries),
                      index_dir=str(ix.settings.index_dir), model=ix.embedder.info.name)
    _emit(report.to_dict() if a.json else render_markdown(report), a.json)


def _command(commands: Any, name: str, summary: str,
             run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
    """A subcommand listed with ``summary``; its own help is ``run``'s docstring."""
    parser = commands.add_parser(name, help=summary, description=" ".join((run.__doc__ or "").split()))
    parser.set_defaults(run=run)
    return parser


def _index_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-dir", type=Path, metavar="DIR",
                        help="Index folder (default: index/ or AIDSEARCH_INDEX_DIR).")


def _json(parser: argparse.ArgumentParser, text: str = "Print JSON.") -> None:
    parser.add_argument("--json", action="store_true", help=text)


def _asking(parser: argparse.ArgumentParser) -> None:
    """The options of search, ask and chat."""
    parser.add_argument("--k", type=_count(1, K_MAX), metavar="N", help="Number of passages.")
    parser.add_argument("--filter", "-f", dest="filters", action="append", metavar="KEY=VALUE",
                        help="country, lang, funder, year (2015 or 2014-2016), source; repeatable.")
    _index_dir(parser)
    parser.add_argument("--server", metavar="URL", help="Ask the aidsearch server at this URL (default: the "
                        "server_url setting, else a server on this machine's port when it serves the same index).")
    parser.add_argument("--local", action="store_true",
                        help="Load the index and model here even when a server is running.")


def parser() -> argparse.ArgumentParser:
    """The ``aidsearch`` command line."""
    top = _Parser(prog="aidsearch", description="Cross-lingual search and answers over aid-project documents.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(commands, "index", "Build or update the index.", index)
    p.add_argument("corpus", nargs="?", type=Path, help="Corpus folder (default: corpus/ or AIDSEARCH_CORPUS_DIR).")
    _index_dir(p)
    p.add_argument("--rebuild", action="store_true", help="Ignore the existing index and embed everything again.")
    p.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                   help="Seconds to wait if another process is indexing.")
    p.add_argument("--ray", metavar="ADDRESS", help="Embed on Ray workers: a cluster address (auto, "
                   "ray://host:10001), or none to start Ray on this machine.")
    p.add_argument("--ray-workers", type=_count(0), default=0, metavar="N",
                   help="Ray workers, one model each (0: one per CPU).")
    _json(p)

    p = _command(commands, "search", "The passages that best match a query.", search)
    p.add_argument("query", help="What to look for.")
    _asking(p)
    _json(p)

    p = _command(commands, "ask", "Answer a question with cited sources.", ask)
    p.add_argument("question", help="A question in English or French.")
    _asking(p)
    _json(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--generate", dest="mode", action="store_const", const="generative",
                      help="Have the configured model write the answer, checked against the sources (the default "
                           "when llm_url is set).")
    mode.add_argument("--extractive", dest="mode", action="store_const", const="extractive",
                      help="Quote the documents.")

    p = _command(commands, "chat", "Answer questions line by line, follow-ups included.", chat)
    _asking(p)
    _json(p, "Print one JSON object per answer, on one line.")

    p = _command(commands, "stats", "What the index holds.", stats)
    _index_dir(p)
    _json(p)

    p = _command(commands, "eval", "Score retrieval and answers on a question set.", eval_questions)
    p.add_argument("queries", type=Path, help="JSONL question set: id, query, lang, relevant, answers per line.")
    _index_dir(p)
    p.add_argument("--mode", help="Retrieval: hybrid (reciprocal rank fusion), learned, dense or bm25 (default: the "
                   "retrieval setting).")
    _json(p)

    model = commands.add_parser("model", help="The embedding model.", description="The embedding model.")
    model.set_defaults(run=None, parser=model)
    p = _command(model.add_subparsers(dest="subcommand", metavar="COMMAND"), "info",
                 "Show the model and the answer-writing server.", model_info)
    _json(p)
    top.set_defaults(run=None, parser=top)
    return top


def _ray_address(argv: list[str]) -> list[str]:
    """``--ray`` given without an address (last, or before an option or the corpus folder) means this machine."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--ray":
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt is None or nxt.startswith("-") or not (nxt == "auto" or "://" in nxt or ":" in nxt):
                out.insert(i + 1, RAY_LOCAL)
            break
    return out


def main(argv: Optional[list[str]] = None) -> None:
    try:
        args = parser().parse_args(_ray_address(sys.argv[1:] if argv is None else argv))
        if args.run is None:  # a command group without its command: its help
            args.parser.print_help()
            return
        args.run(args)
    except UsageError as exc:
        _echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except AidsearchError as exc:
        _echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        _echo("aborted", err=True)
        sys.exit(1)
