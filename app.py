"""Start the aidsearch web app: ``python app.py [--host H] [--port P] [--index-dir D] [--corpus-dir D]``.

Options override the ``AIDSEARCH_*`` environment variables (``AIDSEARCH_AUTH="user:pass"`` turns on the login).
The index is built or brought up to date with the corpus folder before serving.
"""
from __future__ import annotations

import argparse
import os
import sys

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                      ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_name, _value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the aidsearch chat page and HTTP API.")
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1, env AIDSEARCH_HOST)")
    parser.add_argument("--port", type=int, help="port (default 7860, env AIDSEARCH_PORT)")
    parser.add_argument("--index-dir", help="index folder (env AIDSEARCH_INDEX_DIR)")
    parser.add_argument("--corpus-dir", help="documents folder; uploads go to its uploads/ (env AIDSEARCH_CORPUS_DIR)")
    parser.add_argument("--public-without-login", action="store_true", default=None,
                        help="serve on a non-loopback address without a login (refused otherwise; "
                             "env AIDSEARCH_PUBLIC_WITHOUT_LOGIN)")
    args = parser.parse_args(argv)

    from aidsearch.config import load_settings
    from aidsearch.errors import AidsearchError
    from aidsearch.web import serve

    try:
        serve(load_settings(host=args.host, port=args.port, index_dir=args.index_dir, corpus_dir=args.corpus_dir,
                            public_without_login=args.public_without_login))
    except AidsearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
