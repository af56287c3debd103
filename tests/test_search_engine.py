"""The search engine: reproducibility, resume after SIGKILL, failed trials, a Cora search."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sgap_plugins.core.config import SGAPConfig
from sgap_plugins.core.search import SearchEngine, read_trials
from sgap_plugins.core.search.engine import FAIL_LOSS
from sgap_plugins.core.search.evaluation import evaluate_trial
from sgap_plugins.core.synthetic import csbm

FAST = SGAPConfig(epochs=15, patience=5, hidden=16)


def small_graph():
    return csbm(num_nodes=400, num_features=16, feature_snr=0.5, seed=0)


def engine(out: Path, max_evals: int, **kwargs) -> SearchEngine:
    kwargs.setdefault("base_config", FAST)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("hop_cache", out.parent / "hops")
    return SearchEngine(small_graph(), out, max_evals, **kwargs)


def raising_trial(ctx, config, ga_pre, ga_post, seed):
    """Raises for architectures with a 2+ layer MLP, evaluates the others."""
    if config.k_trans > 1:
        raise RuntimeError("boom: deliberately failing trial")
    return evaluate_trial(ctx, config, ga_pre, ga_post, seed)


def sleeping_trial(ctx, config, ga_pre, ga_post, seed):
    time.sleep(60)


def test_fixed_seed_is_reproducible(tmp_path: Path) -> None:
    """Same seed ⇒ same proposals and (deterministic) objectives, also with 2 workers."""
    kw = dict(objectives=["val_error", "params"], seed=3, n_startup=3, workers=2)
    a = engine(tmp_path / "a", 7, **kw).run()
    b = engine(tmp_path / "b", 7, **kw).run()

    def key(result):
        return [
            (t.trial, t.point, t.objectives["val_error"], t.objectives["params"])
            for t in result.trials
        ]

    assert key(a) == key(b)
    assert len({json.dumps(t.point, sort_keys=True) for t in a.trials}) == 7
    assert [t.trial for t in a.trials] == list(range(7))
    assert all(t.status == "ok" for t in a.trials)
    assert a.hypervolume == b.hypervolume > 0
    front = [t.trial for t in a.front]
    assert len(front) >= 1 and a.best.trial in front


def test_resume_after_sigkill(tmp_path: Path) -> None:
    """A search killed with SIGKILL mid-way and resumed ends with exactly max_evals distinct
    trials, keeping the trials finished before the kill."""
    out = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from test_search_engine import engine
        from pathlib import Path
        if __name__ == "__main__":
            engine(Path({str(out)!r}), 12, seed=1, n_startup=4).run()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    journal = out / "trials.jsonl"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if journal.exists() and len(journal.read_text().splitlines()) >= 3:
                break
            assert proc.poll() is None, "the search exited before it could be killed"
            time.sleep(0.2)
        else:
            pytest.fail("no trial finished in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the search and its workers
        proc.wait()
    before = read_trials(journal)
    assert 3 <= len(before) < 12
    with open(journal, "a") as f:  # a torn line, as a kill during a write leaves
        f.write('{"trial": 99, "po')
    result = engine(out, 12, seed=1, n_startup=4, resume=True).run()
    after = read_trials(journal)
    ids = [t.trial for t in after]
    assert sorted(ids) == list(range(12)) and len(ids) == len(set(ids)) == 12
    assert [t.trial for t in result.trials] == list(range(12))
    for t in before:  # finished trials are neither lost nor re-run
        assert next(u for u in after if u.trial == t.trial).__dict__ == t.__dict__


def test_resume_refuses_a_different_search(tmp_path: Path) -> None:
    out = tmp_path / "run"
    engine(out, 1).run()
    with pytest.raises(FileExistsError):
        engine(out, 2).run()
    with pytest.raises(ValueError, match="objectives"):
        engine(out, 2, objectives=["val_error", "params"], resume=True).run()
    more = engine(out, 9, resume=True).run()  # a larger budget (another default n_startup)
    assert [t.trial for t in more.trials] == list(range(9))


def test_raising_trial_is_recorded_as_failed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = engine(out, 6, seed=0, n_startup=6, trial_fn=raising_trial).run()
    failed = [t for t in result.trials if t.status == "fail"]
    ok = [t for t in result.trials if t.status == "ok"]
    assert len(result.trials) == 6 and failed and ok
    assert all(t.config["k_trans"] > 1 for t in failed)
    assert all("boom: deliberately failing trial" in t.error for t in failed)
    assert all(t not in result.front for t in failed)
    lines = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    assert {x["status"] for x in lines} == {"ok", "fail"}
    losses = engine(tmp_path / "x", 1)._losses(result.trials, 6)
    for loss, t in zip(losses, result.trials, strict=True):
        assert (loss == FAIL_LOSS) == (t.status == "fail")


def test_timed_out_trial_is_recorded_as_failed(tmp_path: Path) -> None:
    start = time.monotonic()
    result = engine(tmp_path / "run", 2, trial_timeout=2.0, trial_fn=sleeping_trial).run()
    assert [t.status for t in result.trials] == ["fail", "fail"]
    assert all("timed out" in t.error for t in result.trials)
    assert result.front == [] and result.best is None
    assert time.monotonic() - start < 55  # killed, not waited for


def test_constrained_mode_keeps_budgets(tmp_path: Path) -> None:
    budget = 3000.0
    result = engine(
        tmp_path / "run", 6, objectives=["val_error", "params"], budgets={"params": budget}
    ).run()
    assert all(t.objectives["params"] <= budget for t in result.front)


@pytest.mark.slow
def test_cora_search_two_workers(cora, tmp_path: Path) -> None:
    """A 10-trial search on Cora with 2 worker processes, then the CLI files."""
    from sgap_plugins.cli import main

    out = tmp_path / "cora"
    rc = main(
        [
            "search",
            "--dataset",
            "cora",
            "--max-evals",
            "10",
            "--workers",
            "2",
            "--objectives",
            "val_error,inference_time",
            "--out",
            str(out),
            "--train",
            "epochs=20",
            "--train",
            "patience=10",
            "--no-progress",
        ]
    )
    assert rc == 0
    trials = read_trials(out / "trials.jsonl")
    assert sorted(t.trial for t in trials) == list(range(10))
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["points"] and pareto["hypervolume"] > 0
    for p in pareto["points"]:
        assert set(p["objectives"]) == {"val_error", "inference_time"}
        assert 0.0 <= p["test_acc"] <= 1.0
    assert (out / "pareto.png").stat().st_size > 1000
    assert len((out / "trials.csv").read_text().splitlines()) == 11
    presets = json.loads((out / "presets.json").read_text())["presets"]
    assert {"sgc", "pasca_v3"} <= set(presets)
    rc = main(["train", "--dataset", "cora", "--config", str(out / "pareto.json"), "--index", "0"])
    assert rc == 0


def test_large_store_is_fp16_and_memory_mapped(tmp_path: Path) -> None:
    """Above the memory budget the hop store is fp16 on disk, memory-mapped by readers,
    equal to fp32 propagation up to fp16 rounding, and trials run on it."""
    import numpy as np
    import torch

    from sgap_plugins.core.propagation import propagate
    from sgap_plugins.core.search.evaluation import HopStore, TrialContext, load_hops
    from sgap_plugins.core.search.space import AggregatorChoice

    data = small_graph()
    ppr = AggregatorChoice("ppr(0.1)", "ppr", {"alpha": 0.1})
    store = HopStore(tmp_path / "hops", data, memory_budget=10_000)
    entry = store.entry(ppr, 4)
    assert entry.dtype == "float16" and entry.shape == (5, data.num_nodes, 16)
    assert isinstance(np.load(entry.path, mmap_mode="c"), np.memmap)
    hops = load_hops(entry, memory_budget=10_000)
    assert hops.dtype == torch.float16
    ref = propagate(data.edge_index, data.x, 4, "ppr", alpha=0.1)
    torch.testing.assert_close(hops.float(), ref, rtol=2e-3, atol=2e-3)
    assert store.entry(ppr, 3).path == entry.path  # cached: fewer hops reuse the store
    ctx = TrialContext.create(store, [ppr], 4, tmp_path / "ctx", memory_budget=10_000)
    config = FAST.replace(k_pre=4, ga_pre="ppr", ga_pre_params={"alpha": 0.1}, k_post=2)
    out = evaluate_trial(ctx, config, "ppr(0.1)", "ppr(0.1)", seed=0)
    assert 0.0 <= out["objectives"]["val_error"] <= 1.0
    assert out["objectives"]["inference_time"] > 0
