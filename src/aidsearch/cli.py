"""The ``aidsearch`` command line: errors are printed as one line on stderr with a non-zero exit code."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .config import Settings, load_settings
from .errors import AidsearchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Cross-lingual search and answers over aid-project documents.")
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
    """Show the model: name, source, folder, dimension, fingerprint (builds the bundled model on first use)."""
    from .embed import load_embedder

    info = load_embedder(_settings()).info
    _emit(info.to_dict(), as_json)


def main(argv: Optional[list[str]] = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
    except AidsearchError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except (typer.BadParameter, typer.Exit) as exc:
        raise exc
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            typer.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        raise
