"""The ``sgap`` command line. Each sub-command lives in its own module with ``add_parser``
and ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import doctor, plugins, precompute, search, train
from .common import DefaultsHelpFormatter

COMMANDS = [train, precompute, plugins, search, doctor]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgap", description="Scalable decoupled GNNs (SGAP) and their search (PaSca)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        command = module.add_parser(sub)
        # every sub-command's --help shows the defaults its options take
        command.formatter_class = DefaultsHelpFormatter
        command.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        print(f"sgap {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sgap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
