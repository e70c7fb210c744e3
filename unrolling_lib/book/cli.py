"""Command line: ``python -m unrolling_lib <command>``.

- ``list-chapters``: the chapters in ``_toc.yml`` with their parameters, types and defaults.
- ``run-chapter book/x.ipynb --profile colab -p name value``: execute one chapter with papermill; the
  executed notebook, its parameters and its results go to ``runs/<chapter>/<profile>-<timestamp>/``.
- ``stage-assets``: copy plotly.js and MathJax into the book (``make book`` does this).
- ``build-book``: build the book (every chapter executed at the quick profile) and print each chapter's
  execution seconds (``make book`` does this).
- ``parameterize-chapters OUT --profile smoke``: copies of the chapters with the profile injected by
  papermill, for nbval (``make test`` does this).
- ``sync-chapters``: rewrite Colab links and install cells from ``_config.yml``.
- ``bench <name>``: run a benchmark (see ``unrolling_lib.book.bench``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..validation import ParameterError
from . import chapters as book
from .profiles import PROFILES
from .runner import ChapterFailed, list_chapters, parse_value, run_chapter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m unrolling_lib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list-chapters", help="chapters with their parameters")
    run = sub.add_parser("run-chapter", help="execute one chapter with papermill")
    run.add_argument("chapter", type=Path)
    run.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)}")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("--out", type=Path, default=None, help="folder for runs (default: <repo>/runs)")
    run.add_argument("--resume", type=Path, default=None, metavar="RUN_FOLDER",
                     help="run again in the folder of an interrupted run (same chapter and parameters)")
    run.add_argument("--timeout", type=int, default=None,
                     help="seconds a cell may run (default: execute.timeout in _config.yml)")
    sub.add_parser("stage-assets", help="copy plotly.js and MathJax into the book")
    sub.add_parser("build-book", help="build the book and print each chapter's execution seconds")
    copies = sub.add_parser("parameterize-chapters", help="chapter copies with a profile injected (for nbval)")
    copies.add_argument("out", type=Path)
    copies.add_argument("--profile", default="smoke", help=f"one of {', '.join(PROFILES)}")
    sub.add_parser("sync-chapters", help="rewrite Colab links and install cells from _config.yml")
    bench = sub.add_parser("bench", help="run a benchmark")
    bench.add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list-chapters":
            print(list_chapters())
        elif args.command == "run-chapter":
            params = {name: parse_value(value) for name, value in args.parameter}
            folder = run_chapter(args.chapter, args.profile, params, args.out, timeout=args.timeout,
                                 resume=args.resume)
            print(f"executed notebook and results: {folder}")
        elif args.command == "stage-assets":
            for path in book.stage_assets():
                print(f"staged {path}")
        elif args.command == "build-book":
            from .build import build_book

            return build_book()
        elif args.command == "parameterize-chapters":
            from .build import parameterize_chapters

            written = parameterize_chapters(args.out, {"profile": args.profile})
            print(f"wrote {len(written)} chapter copies at profile={args.profile!r} to {args.out}")
        elif args.command == "sync-chapters":
            changed = book.sync_chapters()
            print(f"updated {len(changed)} chapter(s)" + "".join(f"\n  {p}" for p in changed))
        elif args.command == "bench":
            from .bench import run_bench

            run_bench(args.name)
    except (ParameterError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ChapterFailed as err:  # one line; the executed notebook holds the traceback
        print(f"error: {err}", file=sys.stderr)
        return 2 if err.bad_input else 1
    except KeyboardInterrupt:
        print("interrupted: the run folder keeps what was executed so far (run.json says so)", file=sys.stderr)
        return 130
    return 0
