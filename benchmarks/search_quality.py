"""Search quality: does a 100-trial PaSca search on Cora find a model as accurate as the best
preset (validation accuracy within 0.5 points) that predicts faster than PaSca-V3?

Runs ``sgap search``'s engine (val_error × inference_time, 2 workers by default), evaluates
every preset with its own training hyperparameters on the same hop stores, checks the
criterion, and writes ``pareto.json``, ``trials.csv``, ``pareto.png`` (presets marked) and
``quality.json`` to ``--out``. Resumable: rerun with the same ``--out``.

    .venv/bin/python benchmarks/search_quality.py --out benchmarks/results/search_cora_arch
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sgap_plugins.core.config import PRESETS
from sgap_plugins.core.search import DesignSpace, SearchEngine
from sgap_plugins.core.search.evaluation import evaluate_presets
from sgap_plugins.core.search.report import (
    front_table,
    plot_pareto,
    write_pareto_json,
    write_trials_csv,
)
from sgap_plugins.datasets import cache_dir, load_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cora")
    p.add_argument("--max-evals", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/search_cora_arch")
    p.add_argument("--tolerance", type=float, default=0.005, help="val accuracy tolerance")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    data = load_dataset(args.dataset)
    space = DesignSpace.paper()
    engine = SearchEngine(
        data,
        out,
        args.max_evals,
        objectives=["val_error", "inference_time"],
        space=space,
        workers=args.workers,
        seed=args.seed,
        hop_cache=cache_dir() / "hops",
        resume=(out / "search.json").exists(),
        presets=False,  # evaluated below, over every preset (presets_full.json)
    )
    start = time.perf_counter()
    result = engine.run()
    search_s = time.perf_counter() - start
    presets_path = out / "presets_full.json"
    if presets_path.exists():
        presets = json.loads(presets_path.read_text())
    else:
        presets = evaluate_presets(engine.prepare(), space.graph_aggregators, PRESETS, args.seed)
        presets_path.write_text(json.dumps(presets, indent=2))
    best_name = max(presets, key=lambda k: presets[k]["val_acc"])
    best_val = presets[best_name]["val_acc"]
    v3_time = presets["pasca_v3"]["inference_time"]
    hits = [
        t
        for t in result.front
        if t.val_acc >= best_val - args.tolerance and t.objectives["inference_time"] < v3_time
    ]
    quality = {
        "dataset": data.name,
        "trials": len(result.trials),
        "failed": sum(t.status != "ok" for t in result.trials),
        "search_seconds_this_run": search_s,
        "trial_seconds_total": sum(t.seconds for t in result.trials),
        "best_preset": best_name,
        "best_preset_val_acc": best_val,
        "pasca_v3_inference_time": v3_time,
        "front_size": len(result.front),
        "hypervolume": result.hypervolume,
        "hits": [
            {
                "trial": t.trial,
                "point": t.point,
                "val_acc": t.val_acc,
                "test_acc": t.test_acc,
                "inference_time": t.objectives["inference_time"],
            }
            for t in hits
        ],
        "passed": bool(hits),
    }
    write_pareto_json(result, out / "pareto.json")
    write_trials_csv(result, out / "trials.csv")
    plot_pareto(
        result,
        out / "pareto.png",
        references=presets,
        title=f"{data.name}: {len(result.trials)} trials, presets ★",
    )
    (out / "quality.json").write_text(json.dumps(quality, indent=2))
    print(front_table(result))
    print("presets:")
    for name, v in presets.items():
        print(
            f"  {name:10s} val {v['val_acc']:.4f} test {v['test_acc']:.4f} "
            f"inference {v['inference_time'] * 1e6:.2f} µs/node"
        )
    print(json.dumps({k: v for k, v in quality.items() if k != "hits"}, indent=2))
    print(f"{len(hits)} front point(s) meet the criterion")
    return 0 if hits else 1


if __name__ == "__main__":
    sys.exit(main())
