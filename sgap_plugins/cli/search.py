"""``sgap search``: PaSca multi-objective architecture search on one dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import ops
from ..core.search import OBJECTIVES, DesignSpace, SearchEngine, TrainingRanges
from ..core.search.engine import DEFAULT_BASE_CONFIG
from ..core.search.ray_executor import RayExecutor, RayNotInstalledError, RayUnreachableError
from ..core.search.report import front_table
from ..datasets import load_dataset
from .common import add_dataset_args, non_negative_int, parse_aggregator_spec, parse_params


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "search",
        help="multi-objective architecture search (PaSca) over the SGAP design space",
        description=(
            "Search the 181,500 SGAP architectures of the PaSca design space with hyperopt "
            "TPE and ParEGO scalarisation; writes trials.jsonl (durable, resumable), "
            "pareto.json, trials.csv and pareto.png to --out."
        ),
    )
    add_dataset_args(p)
    p.add_argument("--max-evals", type=int, default=100, help="number of trials (default 100)")
    p.add_argument(
        "--objectives",
        default="val_error,inference_time",
        help=f"comma-separated, from {','.join(OBJECTIVES)} (default val_error,inference_time)",
    )
    p.add_argument(
        "--budget",
        action="append",
        metavar="OBJECTIVE=MAX",
        help="constrained mode: minimise val_error subject to OBJECTIVE <= MAX (repeatable; "
        "inference_time in seconds per node, peak_memory in bytes)",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--workers", type=int, default=1, help="parallel trials (processes or Ray tasks)"
    )
    p.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where trials run: local worker processes (default) or Ray tasks "
        "(pip install 'sgap-plugins[ray]')",
    )
    p.add_argument(
        "--ray-address",
        metavar="auto|HOST:PORT",
        help="with --executor ray: the Ray cluster to run on ('auto': the one `ray start` "
        "started on this machine); default a local Ray runtime with --workers CPUs",
    )
    p.add_argument(
        "--ray-share",
        choices=("path", "object-store"),
        help="with --executor ray: workers read the hop stores from their paths (default; "
        "one machine or shared storage) or from Ray's object store (no shared storage)",
    )
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument(
        "--seed", type=non_negative_int("--seed"), default=0, help="search and training seed"
    )
    p.add_argument(
        "--trial-timeout", type=float, default=600.0, help="seconds before a trial is failed"
    )
    p.add_argument(
        "--search-training",
        action="store_true",
        help="also search lr, weight decay, hidden size, dropout and input dropout",
    )
    p.add_argument(
        "--warm-start",
        action="store_true",
        help="propose the presets that lie in the space first (with --search-training, "
        "trained as the dataset's recipe says, clipped into the ranges), then search as usual",
    )
    p.add_argument(
        "--train",
        action="append",
        metavar="KEY=VALUE",
        help="fixed training hyperparameter of every trial, e.g. --train epochs=100",
    )
    p.add_argument(
        "--extra-graph-aggregator",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="add a (plugin) graph aggregator to GA_pre/GA_post, with parameters after a "
        "colon, e.g. heat:tau=2 or ppr:alpha=0.15 (repeatable)",
    )
    p.add_argument(
        "--extra-message-aggregator",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="add a (plugin) message aggregator to MA, with parameters after a colon (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-presets", action="store_true", help="do not evaluate the presets for the plot"
    )
    p.add_argument("--json", action="store_true", help="print pareto.json to stdout")
    return p


def _ray_executor(args: argparse.Namespace, share: str) -> RayExecutor:
    """The executor of ``--executor ray`` (ValueError/ImportError: a one-line error)."""
    try:
        return RayExecutor(
            args.workers,
            trial_timeout=args.trial_timeout,
            address=args.ray_address,
            share=share.replace("-", "_"),
        )
    except RayNotInstalledError:
        raise ImportError("`--executor ray` needs Ray: pip install 'sgap-plugins[ray]'") from None


def run(args: argparse.Namespace) -> int:
    if args.executor != "ray":
        for flag, value in (("--ray-address", args.ray_address), ("--ray-share", args.ray_share)):
            if value is not None:
                raise ValueError(f"{flag} needs --executor ray")
    share = args.ray_share or "path"
    # before the dataset and the hop stores: a missing Ray is reported at once
    executor = _ray_executor(args, share) if args.executor == "ray" else None
    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    budgets = {}
    for name, bound in parse_params(args.budget, "--budget").items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ValueError(f"--budget {name}={bound!r}: MAX must be a number")
        budgets[name] = float(bound)
    base = DEFAULT_BASE_CONFIG.replace(**parse_params(args.train, "--train"))
    space = DesignSpace.paper(
        extra_graph_aggregators=[
            parse_aggregator_spec(a, "--extra-graph-aggregator")
            for a in args.extra_graph_aggregator
        ],
        extra_message_aggregators=[
            parse_aggregator_spec(a, "--extra-message-aggregator")
            for a in args.extra_message_aggregator
        ],
        training=TrainingRanges() if args.search_training else None,
    )
    data = load_dataset(args.dataset, args.data_root, args.split_seed)
    # a first run compiles the propagation kernels: say so apart from the hop stores' time
    build_s = ops.prepare()
    if build_s >= 1.0 and not args.no_progress:
        print(f"propagation kernels built in {build_s:.1f} s (once)", file=sys.stderr)
    out = Path(args.out)
    # the engine writes every output (pareto.json, trials.csv, pareto.png, presets.json),
    # exactly as the Python API does; hop stores go to $SGAP_CACHE/hops by default
    engine = SearchEngine(
        data,
        out,
        args.max_evals,
        objectives=objectives,
        space=space,
        base_config=base,
        budgets=budgets or None,
        workers=args.workers,
        seed=args.seed,
        trial_timeout=args.trial_timeout,
        executor=executor,
        resume=args.resume,
        progress=not args.no_progress,
        data_root=args.data_root,
        split_seed=args.split_seed,
        presets=not args.no_presets,
        warm_start=args.warm_start,
    )
    on = f"{args.workers} worker(s)"  # the local pool's wording, as make demo prints it
    if executor is not None:
        cluster = args.ray_address or "a local runtime"
        on = f"{args.workers} Ray task(s) at once on {cluster} (hop stores by {share})"
    warm = engine.warm_start_points()
    print(
        f"search: {data.name} ({data.num_nodes} nodes), {space}, objectives {objectives}"
        + (f", budgets {budgets}" if budgets else "")
        + (f", warm start from {[name for name, _ in warm]}" if args.warm_start else "")
        + f", {args.max_evals} trials on {on} → {out}",
        file=sys.stderr,
    )
    try:
        result = engine.run()
    except FileExistsError as exc:
        print(f"sgap search: error: {exc}", file=sys.stderr)
        return 2
    except RayUnreachableError as exc:
        print(
            f"sgap search: error: --ray-address {exc.address}: no Ray cluster there "
            f"({exc.reason}); start one with `ray start --head`, or drop --ray-address to "
            "run on a local Ray runtime",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            f"sgap search: interrupted; finished trials are in {out / 'trials.jsonl'}, "
            "continue with --resume",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print(json.dumps(result.pareto_json()))
        return 0
    failed = sum(t.status != "ok" for t in result.trials)
    print(
        f"{len(result.trials)} trials ({failed} failed), front of {len(result.front)}, "
        f"hypervolume {result.hypervolume:.6g}"
    )
    print(front_table(result))
    written = [p for p in ("pareto.json", "trials.csv", "pareto.png") if (out / p).exists()]
    print(f"wrote {', '.join(str(out / p) for p in written)}")
    print(f"retrain a front member: sgap train --config {out / 'pareto.json'} --index 0")
    return 0
