"""``torchrun [--nnodes ...] --nproc_per_node P -m sgap_plugins.dist propagate <the options
of sgap precompute> [--layout auto|shared|shards] [--timeout SECONDS]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch.distributed.elastic.multiprocessing.errors import record

from ..cli import precompute
from ..cli.common import DefaultsHelpFormatter
from . import column_shards
from .column_shards import PROG, TORCHRUN_HINT, NotUnderTorchrun, RankInfo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Propagation across processes and machines; run it under torchrun: "
        f"{TORCHRUN_HINT}",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "propagate",
        formatter_class=DefaultsHelpFormatter,
        help="sgap precompute with the feature columns split across torchrun's ranks",
        description=(
            "sgap precompute with the feature columns split across the ranks of a torchrun "
            "job: each rank maps the graph from disk (DIR/graph, built once) and propagates "
            "its columns of x, with no communication; all ranks write one hop folder that "
            "load_hops reads as one process's result, bit for bit. Rerun the same command "
            "(same number of ranks) to resume a failed or interrupted run."
        ),
    )
    precompute.add_options(p)
    column_shards.add_options(p)
    return parser


@record
def main(argv: Sequence[str] | None = None) -> int:
    """Parse, check torchrun's environment, run this rank. A bad argument or input is a
    one-line error and exit status 2 on the rank that found it; anything else propagates
    (``record`` hands its traceback to torchrun's summary of the failed job)."""
    args = build_parser().parse_args(argv)
    try:
        me = RankInfo.from_env()
    except NotUnderTorchrun as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        return column_shards.run(args, me)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, ImportError) as exc:
        print(
            f"{PROG} {args.command}: error [rank {me.rank}/{me.world_size}]: {exc}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
