"""The ``aidsearch`` command line: errors are printed as one line on stderr with a non-zero exit code."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .config import Settings, load_settings
from .errors import AidsearchError, QueryError
from .query import check_question, parse_filters

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Cross-lingual search and answers over aid-project documents.")
model_app = typer.Typer(no_args_is_help=True, help="The embedding model.")
app.add_typer(model_app, name="model")


def _settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def _emit(data: dict[str, Any] | str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        typer.echo(data if isinstance(data, str) else "\n".join(f"{k}: {v}" for k, v in data.items()))


@model_app.command("info")
def model_info(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the model: name, source, folder, dimension, fingerprint (builds the bundled model on first use), and
    whether generative answers are configured and their model server reachable."""
    from .embed import load_embedder
    from .generate import ChatServer, status

    settings = _settings()
    info = load_embedder(settings).info
    server = ChatServer(settings.llm_url, settings.llm_model, settings.llm_api_key, settings.llm_timeout) \
        if settings.llm_url else None
    _emit({**info.to_dict(), "generation": status(server)}, as_json)


IndexDir = typer.Option(None, "--index-dir", help="Index folder (default: index/ or AIDSEARCH_INDEX_DIR).")
AsJson = typer.Option(False, "--json", help="Print JSON.")
K = typer.Option(None, "--k", min=1, max=100, help="Number of passages.")
FilterOpt = typer.Option(None, "--filter", "-f",
                         help="key=value: country, lang, funder, year (2015 or 2014-2016), source.")


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


@app.command()
def index(
    corpus: Optional[Path] = typer.Argument(  # noqa: B008 - how typer declares an argument
        None, help="Corpus folder (default: corpus/ or AIDSEARCH_CORPUS_DIR)."),
    index_dir: Optional[Path] = IndexDir,
    rebuild: bool = typer.Option(False, "--rebuild", help="Ignore the existing index and embed everything again."),
    wait: float = typer.Option(0.0, "--wait", help="Seconds to wait if another process is indexing."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]", help="Embed on Ray workers: a cluster "
                                      "address (auto, ray://host:10001), or none to start Ray on this machine."),
    ray_workers: int = typer.Option(0, "--ray-workers", min=0, help="Ray workers, one model each (0: one per CPU)."),
    as_json: bool = AsJson,
) -> None:
    """Build or update the index: only new or changed documents are embedded; removed ones are dropped."""
    from .api import open_index

    settings = _settings(index_dir=index_dir, corpus_dir=corpus)
    embedder = None
    if ray is not None:
        from .distributed import RayEmbedder
        from .embed import load_embedder

        embedder = RayEmbedder(settings, load_embedder(settings), address=None if ray == RAY_LOCAL else ray,
                               workers=ray_workers)
    bar = _Bar()
    try:
        ix = open_index(settings=settings, embedder=embedder, create=True, progress=bar, lock_timeout=wait)
        report = ix.created or ix.update(rebuild=rebuild, progress=bar, lock_timeout=wait)
    finally:
        bar.close()
    data = report.to_dict()
    on_ray = ""
    if embedder is not None:
        embedder.finish()
        data["ray"] = dict(embedder.stats)
        on_ray = (f"; on Ray: {embedder.stats['embedded']} texts embedded, {embedder.stats['resumed']} from an "
                  "earlier run")
    if as_json:
        _emit(data, True)
        return
    for item in report.skipped:
        typer.echo(f"skipped {item.source}: {item.reason}", err=True)
    state = "index written" if report.written else "index already up to date"
    rate = f", {data['texts_per_second']} texts/s" if data["texts_per_second"] else ""
    rate += on_ray
    typer.echo(f"{state}: {report.documents} documents, {report.chunks} passages "
               f"({len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
               f"{len(report.skipped)} skipped; {report.embedded_chunks} passages and "
               f"{report.embedded_texts - report.embedded_chunks} sentences embedded in {report.seconds:.1f} s{rate})")


def _open(index_dir: Optional[Path]):
    from .api import open_index

    return open_index(settings=_settings(index_dir=index_dir))


ServerOpt = typer.Option(None, "--server", help="Ask the aidsearch server at this URL (default: the server_url "
                         "setting, else a server on this machine's port when it serves the same index).")
LocalOpt = typer.Option(False, "--local", help="Load the index and model here even when a server is running.")


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


@app.command()
def search(query: str = typer.Argument(..., help="What to look for."), k: Optional[int] = K,
           filters: Optional[list[str]] = FilterOpt, index_dir: Optional[Path] = IndexDir,
           as_json: bool = AsJson, server: Optional[str] = ServerOpt, local: bool = LocalOpt) -> None:
    """The passages that best match QUERY (hybrid dense + keyword search)."""
    _check(query, filters)
    remote = _remote(index_dir, server, local)
    if remote is not None:
        data = remote.search(query, k=k, filters=filters)
    else:
        data = _open(index_dir).search(query, k=k, filters=filters or None).to_dict()
    if as_json:
        _emit(data, True)
        return
    if not data["hits"]:
        typer.echo("no passage found")
    for hit in data["hits"]:
        page = f" p.{hit['page']}" if hit.get("page") else ""
        typer.echo(f"[{hit['rank']}] {hit['title']} ({hit['source']}{page}, {hit['lang']}) score {hit['score']:.4f}")
        typer.echo("    " + " ".join(hit["text"].split())[:300])


def _print_answer(data: dict[str, Any]) -> None:
    """The answer (``Answer.to_dict()``) with its spans in bold, then its numbered sources."""
    from .types import MESSAGES, source_label

    gen = data.get("generation") or {}
    say = MESSAGES.get(data["language"], MESSAGES["en"])
    if gen.get("notice"):
        typer.echo(f"({gen.get('notice_text') or gen['notice']}: {say['quoting_instead']})", err=True)
    text, pos, parts = data["answer"] or "", 0, []
    for span in data["highlights"]:  # the answer itself in bold
        parts += [text[pos:span["start"]], typer.style(text[span["start"]:span["end"]], bold=True, underline=True)]
        pos = span["end"]
    typer.echo("".join(parts) + text[pos:])
    if data["citations"]:
        typer.echo(f"\n{say['sources']}:")
    for c in data["citations"]:
        typer.echo(source_label(c["n"], c["title"], c["source"], c.get("page"), c["lang"]))
    if data["mode"] == "generative":
        typer.echo(f"\n({say['written_by'].format(model=gen.get('model'))})")


@app.command()
def ask(question: str = typer.Argument(..., help="A question in English or French."), k: Optional[int] = K,
        filters: Optional[list[str]] = FilterOpt, index_dir: Optional[Path] = IndexDir, as_json: bool = AsJson,
        generate: Optional[bool] = typer.Option(None, "--generate/--extractive",
                                                help="Have the configured model write the answer (checked against "
                                                     "the sources), or quote the documents (default: generate when "
                                                     "llm_url is set)."),
        server: Optional[str] = ServerOpt, local: bool = LocalOpt) -> None:
    """Answer QUESTION with sentences quoted from the documents (or written by the configured model and checked
    against them) and numbered sources."""
    mode = None if generate is None else "generative" if generate else "extractive"
    _check(question, filters)
    remote = _remote(index_dir, server, local)
    if remote is not None:
        data = remote.ask(question, k=k, filters=filters, mode=mode)
    else:
        data = _open(index_dir).ask(question, k=k, filters=filters or None, answer_mode=mode).to_dict()
    if as_json:
        _emit(data, True)
        return
    _print_answer(data)


_END_OF_CHAT = frozenset({"", "quit", "exit"})


@app.command()
def chat(k: Optional[int] = K, filters: Optional[list[str]] = FilterOpt, index_dir: Optional[Path] = IndexDir,
         as_json: bool = typer.Option(False, "--json", help="Print one JSON object per answer, on one line."),
         server: Optional[str] = ServerOpt, local: bool = LocalOpt) -> None:
    """Answer questions read line by line from stdin until an empty line, "quit" or the end of input; a follow-up
    ("and its budget?", "et au Laos ?") is read with the subject of the previous question."""
    from .conversation import FOLLOWUP_LABEL

    parse_filters(filters)
    answer = _chat_turns(index_dir, server, local, k, filters)
    prompt = sys.stdin.isatty()
    while True:
        if prompt:
            typer.echo("> ", nl=False)
        line = sys.stdin.readline()
        if not line or line.strip().lower() in _END_OF_CHAT:
            return
        try:
            data = answer(line)
        except QueryError as exc:
            typer.echo(f"error: {exc}", err=True)
            continue
        if as_json:
            typer.echo(json.dumps(data, ensure_ascii=False))
            continue
        if data.get("followup_of"):
            typer.echo(f"({FOLLOWUP_LABEL.get(data['language'], FOLLOWUP_LABEL['en'])}: {data['followup_of']})")
        _print_answer(data)
        typer.echo("")


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


@app.command()
def stats(index_dir: Optional[Path] = IndexDir, as_json: bool = AsJson) -> None:
    """Documents, passages, languages, dates and model of the index."""
    from .config import load_settings
    from .store import IndexStore

    manifest = IndexStore(load_settings(index_dir=index_dir).index_dir).read_manifest()
    data = {
        "documents": len(manifest.get("documents", {})), "passages": manifest.get("chunks"),
        "languages": manifest.get("languages"), "created": manifest.get("created"), "updated": manifest.get("updated"),
        "model": manifest.get("model", {}).get("name"), "fingerprint": manifest.get("model", {}).get("fingerprint"),
        "chunking": manifest.get("chunking"), "faiss": manifest.get("faiss"), "corpus": manifest.get("corpus"),
        "backend": manifest.get("backend", {"name": "faiss"}),
    }
    _emit(data, as_json)


@app.command("eval")
def eval_questions(
    queries: Path = typer.Argument(  # noqa: B008 - how typer declares an argument
        ..., help="JSONL question set: id, query, lang, relevant, answers per line."),
    index_dir: Optional[Path] = IndexDir,
    mode: Optional[str] = typer.Option(None, "--mode", help="Retrieval: hybrid (reciprocal rank fusion), learned, "
                                       "dense or bm25 (default: the retrieval setting)."),
    as_json: bool = AsJson,
) -> None:
    """Score retrieval (recall, MRR, nDCG of documents), answers and abstentions on a question set."""
    from .evaluate import EvalError, evaluate, load_questions, render_markdown
    from .retrieve import MODES

    if mode is not None and mode not in MODES:
        raise EvalError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    questions = load_questions(queries)
    ix = _open(index_dir)
    report = evaluate(ix, questions, mode=mode, questions_file=str(queries),
                      index_dir=str(ix.settings.index_dir), model=ix.embedder.info.name)
    _emit(report.to_dict() if as_json else render_markdown(report), as_json)


RAY_LOCAL = "local"


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
        app(args=_ray_address(sys.argv[1:] if argv is None else argv), standalone_mode=False)
    except AidsearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors: an unknown option, a bad value, a missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"error: {' '.join(message.split())}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
