"""Column-sharded propagation: the ranks of one ``torchrun`` job each propagate a contiguous
range of feature columns into one hop folder.

Every column of the hops depends only on the same column of ``x``
(``m^t[:, c] = combine(W m^{t-1}[:, c], x[:, c], t)``), so rank ``r`` of ``P`` computes
columns ``[c0, c1)`` of an even split of ``F`` (:func:`split_columns`) with no
communication: it maps the graph from disk (``DIR/graph``, built once by one process) and
reads its columns of ``x``. It runs the same :class:`~sgap_plugins.core.propagation.ColumnBlocks`
kernels as ``sgap precompute``, whose numbers for a column do not depend on the block it is
computed in, so the folder holds the one-process result bit for bit, for any ``P``.

The process group carries only a few small control messages (CPU tensors, gloo):

1. rank 0 writes a token into ``DIR``; every rank reports whether it reads it back —
   whether ``DIR`` is *shared* storage. Layout ``"shared"`` (one ``hops.npy``, each rank
   writing its columns) needs it; ``"shards"`` (``hops.rank{r}.npy`` per rank, stitched by
   :func:`~sgap_plugins.core.hop_folder.load_hops`) works on either;
2. the graph is built (or reused) by rank 0, or on unshared storage by local rank 0 of each
   machine, then a barrier, then every rank maps it;
3. rank 0 settles the folder (finished already, or another run to refuse or, with
   ``--overwrite``, forget); each rank reads its own journal ``progress.rank{r}.json``;
4. each rank propagates its blocks, journalling each after its data is flushed, and
   fsyncs its file;
5. a gather of every rank's timings doubles as the barrier that confirms all finished;
   rank 0 then writes ``manifest.json``, last.

A rank that raises exits non-zero and ``torchrun`` stops the others; no manifest is written,
so the folder is refused by ``load_hops`` until the same command, rerun, resumes each rank's
finished blocks. Collectives time out after ``--timeout`` seconds (a rank that vanished
without an exit status).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .. import ops
from ..cli.common import parse_params
from ..cli.precompute import DTYPES, load_inputs, name_features
from ..core.durable_files import write_atomic, write_json_atomic
from ..core.hop_folder import (
    HOPS,
    MANIFEST,
    RANK_JOURNAL,
    ROWS,
    SHARD,
    finished_result,
    hop_identity,
    journal_state,
    npy_matches,
    refuse_other_journals,
    run_blocks,
    start_journal,
    write_rows,
)
from ..core.propagation import ColumnBlocks, check_memory_budget

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TORCHRUN_HINT = "torchrun --nproc_per_node P -m sgap_plugins.dist propagate ..."
LAYOUT_CHOICES = ("auto", "shared", "shards")
DEFAULT_TIMEOUT_S = 3 * 3600
_PROBE = ".sgap-dist-probe"
PROG = "python -m sgap_plugins.dist"
# Seconds a rank that lost its peers waits before failing itself (see _together).
_SETTLE_S = 30.0


class NotUnderTorchrun(RuntimeError):
    """The process was started without ``torchrun``'s environment."""


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job, from ``torchrun``'s environment."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> RankInfo:
        env = os.environ if environ is None else environ
        missing = [name for name in TORCHRUN_ENV if name not in env]
        if missing:
            raise NotUnderTorchrun(
                f"run it under torchrun: {TORCHRUN_HINT} ({', '.join(missing)} not set)"
            )
        return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]))


def split_columns(num_features: int, world_size: int) -> list[tuple[int, int]]:
    """The columns ``[c0, c1)`` of each rank: an even, contiguous split of ``F`` in which the
    first ``F % P`` ranks get one column more (a rank gets none when ``F < P``).

    >>> split_columns(7, 3)
    [(0, 3), (3, 5), (5, 7)]
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    base, extra = divmod(num_features, world_size)
    spans, c0 = [], 0
    for r in range(world_size):
        c1 = c0 + base + (r < extra)
        spans.append((c0, c1))
        c0 = c1
    return spans


def choose_backend(local_rank: int) -> str:
    """``gloo`` for the CPU tensors of the control messages; ``nccl`` too for CUDA tensors
    when this rank has its own GPU (``LOCAL_RANK < device_count``). The propagation itself
    runs on the CPU: a memory-mapped ``x`` is read into CPU column blocks."""
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``propagate`` beyond ``sgap precompute``'s."""
    parser.add_argument(
        "--layout",
        choices=LAYOUT_CHOICES,
        default="auto",
        help="shared: one hops.npy, every rank writing its columns (--out on storage all "
        "ranks see); shards: hops.rank{r}.npy per rank, stitched by load_hops; auto: shared "
        "if every rank sees the same --out, else shards",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="how long a rank waits for the others at a barrier (the graph build, the "
        "slowest rank's propagation) before failing",
    )


def run(args: argparse.Namespace, me: RankInfo) -> int:
    """One rank's part of ``python -m sgap_plugins.dist propagate``; rank 0 prints the
    summary. Joins and leaves the process group."""
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    dist.init_process_group(
        choose_backend(me.local_rank),
        rank=me.rank,
        world_size=me.world_size,
        timeout=timedelta(seconds=args.timeout),
    )
    # After a failure the process group is left to the process's end (torchrun stops the
    # job): destroying it while other ranks are inside a collective can hang.
    manifest = propagate_columns(args, me)
    dist.destroy_process_group()
    _SENT.clear()
    if manifest is None:  # not rank 0
        return 0
    if args.json:
        print(json.dumps({"out": str(Path(args.out)), **manifest}))
        return 0
    timings = manifest["timings"]
    print(
        f"{manifest['aggregator']} x{manifest['k']} -> {manifest['shape']} {manifest['dtype']} "
        f"on {manifest['world_size']} ranks ({manifest['layout']} layout) in "
        f"{timings['total_s']:.3f} s (slowest rank's propagation "
        f"{timings['propagate_s']:.3f} s; {manifest['num_blocks']} column block(s), "
        f"{manifest['resumed_blocks']} resumed), written to {args.out}"
    )
    return 0


def propagate_columns(args: argparse.Namespace, me: RankInfo) -> dict[str, Any] | None:
    """This rank's columns into ``args.out``; rank 0 returns the manifest, the others
    ``None``."""
    start = time.perf_counter()
    params = parse_params(args.param)
    budget = check_memory_budget(args.memory_budget)
    dtype = DTYPES[args.dtype] if args.dtype else None
    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {folder} exists and is not a folder; choose a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    shared = _shared_storage(folder, me)
    layout = args.layout if args.layout != "auto" else ("shared" if shared else "shards")
    if layout == "shared" and not shared:
        raise ValueError(
            f"--layout shared needs --out {folder} on storage every rank sees, and some rank "
            "does not see rank 0's files there; use --layout shards (or auto)"
        )

    # One process per storage builds the graph (or finds it built); the others then map it.
    builds = me.rank == 0 if shared else me.local_rank == 0
    loaded = load_inputs(args, budget) if builds else None
    _together("the graph build", dist.barrier)
    if loaded is None:
        loaded = load_inputs(args, budget, build_graph=False)
    kernel_build_s = ops.prepare()

    blocks = ColumnBlocks.prepare(
        loaded.graph,
        loaded.x,
        args.k,
        args.aggregator,
        rows=loaded.rows,
        dtype=dtype,
        memory_budget=budget,
        npy=True,
        **params,
    )
    identity = {
        **hop_identity(loaded.x, blocks, loaded.inputs),
        "layout": layout,
        "world_size": me.world_size,
    }
    columns = split_columns(blocks.num_features, me.world_size)
    c0, c1 = columns[me.rank]
    k1, num_rows, _ = blocks.shape
    if layout == "shared":
        data, shape, offset = folder / HOPS, blocks.shape, 0
    else:
        data, shape, offset = folder / SHARD.format(rank=me.rank), (k1, num_rows, c1 - c0), c0
    journal = folder / RANK_JOURNAL.format(rank=me.rank)

    finished: dict[str, Any] | None = None
    if me.rank == 0:
        finished = finished_result(folder, identity, args.overwrite, [ROWS, data.name])
        if finished is None:
            own = {RANK_JOURNAL.format(rank=r) for r in range(me.world_size)}
            refuse_other_journals(folder, own, args.overwrite)
    if _broadcast_flag(finished is not None):
        return finished
    done = journal_state(journal, data, shape, identity, args.overwrite)
    resumed = len(done)
    # Every rank has judged its journal against the files as they were: only now may rank 0
    # replace a damaged hops.npy (the journals of its blocks were then found invalid).
    _together("reading the journals", dist.barrier)
    if me.rank == 0 and (not done or not (folder / ROWS).is_file()):
        write_rows(folder / ROWS, blocks)
    creates = layout == "shards" or me.rank == 0  # the file this rank writes, or hops.npy
    if creates and not npy_matches(data, shape, identity["dtype"]):
        start_journal(journal, data, blocks, shape, identity)  # (done is empty then)
    elif not done:
        start_journal(journal, None, blocks, shape, identity)
    _together("creating the hops", dist.barrier)  # hops.npy at full size before any rank maps it

    spans = blocks.spans_of(c0, c1)
    try:
        propagate_s = run_blocks(
            blocks,
            spans,
            data,
            journal,
            identity,
            done,
            column_offset=offset,
            progress=not args.no_progress and me.rank == 0,
            desc=f"rank 0/{me.world_size} {identity['aggregator']} k={blocks.k}",
        )
    except ValueError as exc:
        name_features(args, loaded, exc)
        raise
    mine = {
        "rank": me.rank,
        "num_blocks": len(spans),
        "resumed_blocks": resumed,
        "propagate_s": propagate_s,
        "graph_s": loaded.graph_s,
        "kernel_build_s": kernel_build_s,
    }
    # ... which doubles as the barrier: every rank finished and fsynced its data
    ranks: list[dict[str, Any]] = _gather_stats(mine, me.world_size)
    for stats, span in zip(ranks, columns, strict=True):
        for key in ("rank", "num_blocks", "resumed_blocks"):
            stats[key] = int(stats[key])
        stats["columns"] = list(span)
    manifest: dict[str, Any] | None = None
    if me.rank == 0:
        manifest = {
            **identity,
            "columns": [list(span) for span in columns],
            **(
                {"shards": [SHARD.format(rank=r) for r in range(me.world_size)]}
                if layout == "shards"
                else {}
            ),
            "num_rows": blocks.num_rows,
            "num_features": blocks.num_features,
            "memory_budget": blocks.budget,
            "working_bytes": blocks.working_bytes,
            "num_blocks": sum(r["num_blocks"] for r in ranks),
            "resumed_blocks": sum(r["resumed_blocks"] for r in ranks),
            "ranks": ranks,
            "timings": {
                "graph_s": max(r["graph_s"] for r in ranks),
                "propagate_s": max(r["propagate_s"] for r in ranks),
                "total_s": time.perf_counter() - start,
            },
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json_atomic(folder / MANIFEST, manifest)
    _together("writing the manifest", dist.barrier)  # the journals have served
    journal.unlink(missing_ok=True)
    return manifest


def _shared_storage(folder: Path, me: RankInfo) -> bool:
    """Whether every rank reads back the token rank 0 writes into ``folder``."""
    probe = folder / _PROBE
    token = torch.zeros(32, dtype=torch.uint8)
    if me.rank == 0:
        token.copy_(torch.tensor(list(uuid.uuid4().hex.encode()), dtype=torch.uint8))
        write_atomic(probe, lambda f: f.write(bytes(token.tolist()).decode()))
    _together("the storage probe", dist.broadcast, token, src=0)
    try:
        sees = probe.read_text() == bytes(token.tolist()).decode()
    except (OSError, UnicodeDecodeError):
        sees = False
    flag = torch.tensor([int(sees)])
    # also: every rank has read it
    _together("the storage probe", dist.all_reduce, flag, op=dist.ReduceOp.MIN)
    if me.rank == 0:
        probe.unlink(missing_ok=True)
    return bool(flag.item())


def _broadcast_flag(value: bool) -> bool:
    """Rank 0's ``value``, on every rank."""
    flag = torch.tensor([int(value)])
    _together("checking the folder", dist.broadcast, flag, src=0)
    return bool(flag.item())


def _gather_stats(stats: dict[str, float], world_size: int) -> list[dict[str, float]]:
    """Every rank's ``stats`` (the same keys, numbers), on every rank."""
    mine = torch.tensor(list(stats.values()), dtype=torch.float64)
    every = [torch.empty_like(mine) for _ in range(world_size)]
    _together("the propagation", dist.all_gather, every, mine)
    return [dict(zip(stats, row.tolist(), strict=True)) for row in every]


# Tensors handed to collectives, kept until the group is destroyed: were a gloo worker
# thread to drop the last reference to one, it would need the GIL to free its Python
# object while destroy_process_group, holding the GIL, joins that thread (a deadlock).
_SENT: list[Tensor] = []


def _together(step: str, collective: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """``collective(*args, **kwargs)``; when it fails (another rank exited, or timed out),
    say so and wait ``_SETTLE_S`` before raising: torchrun, which stops the job as soon as a
    rank fails, stops this one in the meantime, so its summary names the rank that failed
    first and its error rather than this consequence."""
    for arg in args:
        _SENT.extend(arg if isinstance(arg, list) else [arg] if isinstance(arg, Tensor) else [])
    try:
        collective(*args, **kwargs)
    except RuntimeError as exc:
        print(
            f"{PROG}: rank {dist.get_rank()} lost the other ranks during {step} ({exc}); "
            "another rank's error above says why",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(_SETTLE_S)
        raise
