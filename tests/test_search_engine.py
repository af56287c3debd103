"""The search engine: reproducibility, resume after SIGKILL, failed trials, a Cora search."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sgap_plugins.core.config import SGAPConfig
from sgap_plugins.core.search import SearchEngine, read_trials
from sgap_plugins.core.search.evaluation import evaluate_trial
from sgap_plugins.core.search.journal import Trial
from sgap_plugins.core.search.scalarization import FAIL_LOSS
from sgap_plugins.core.synthetic import csbm

FAST = SGAPConfig(epochs=15, patience=5, hidden=16)


def small_graph():
    return csbm(num_nodes=400, num_features=16, feature_snr=0.5, seed=0)


def engine(out: Path, max_evals: int, **kwargs) -> SearchEngine:
    kwargs.setdefault("base_config", FAST)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("hop_cache", out.parent / "hops")
    kwargs.setdefault("presets", False)
    return SearchEngine(small_graph(), out, max_evals, **kwargs)


def raising_trial(ctx, config, ga_pre, seed):
    """Raises for architectures with a 2+ layer MLP, evaluates the others."""
    if config.k_trans > 1:
        raise RuntimeError("boom: deliberately failing trial")
    return evaluate_trial(ctx, config, ga_pre, seed)


def sleeping_trial(ctx, config, ga_pre, seed):
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
    # no proposal repeats a model already evaluated when it was proposed (trials 0 … n−2
    # with 2 workers); one still running may be proposed again
    space = engine(tmp_path / "c", 1).space
    for n, t in enumerate(a.trials):
        assert space.model_key(t.point) not in {
            space.model_key(u.point) for u in a.trials[: max(n - 1, 0)]
        }
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


def _spawned_children(pid: int) -> list[int]:
    """The pids of the ``multiprocessing`` spawn workers whose parent is ``pid``."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        if ppid == pid and b"spawn_main" in cmdline:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_stops_the_workers(tmp_path: Path) -> None:
    """SIGTERM to the search process alone ends the search with KeyboardInterrupt after it
    stops its workers; they do not run on until their (here 60 s) trials end."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {[str(Path(__file__).parent)]!r}
        from test_search_engine import engine, sleeping_trial
        from pathlib import Path
        if __name__ == "__main__":
            try:
                engine(Path({str(tmp_path / "run")!r}), 4, workers=2,
                       trial_fn=sleeping_trial).run()
            except KeyboardInterrupt:
                sys.exit(7)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2:
            assert proc.poll() is None, "the search exited before its workers started"
            assert time.monotonic() < deadline, "the workers did not start in time"
            time.sleep(0.5)
            workers = _spawned_children(proc.pid)
        time.sleep(3)  # the workers are in their sleeping trials
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 7
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} still runs"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in workers:  # orphans of a failed run
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


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
    from sgap_plugins.core.search.evaluation import HopStore, TrialContext
    from sgap_plugins.core.search.space import AggregatorChoice

    data = small_graph()
    ppr = AggregatorChoice("ppr(0.1)", "ppr", {"alpha": 0.1})
    store = HopStore(tmp_path / "hops", data, memory_budget=10_000)
    entry = store.entry(ppr, 4)
    assert entry.dtype == "float16" and entry.shape == (5, data.num_nodes, 16)
    assert isinstance(np.load(entry.path, mmap_mode="c"), np.memmap)
    hops = entry.load(memory_budget=10_000)
    assert hops.dtype == torch.float16
    ref = propagate(data.edge_index, data.x, 4, "ppr", alpha=0.1)
    torch.testing.assert_close(hops.float(), ref, rtol=2e-3, atol=2e-3)
    assert store.entry(ppr, 3).path == entry.path  # cached: fewer hops reuse the store
    ctx = TrialContext.create(store, [ppr], 4, tmp_path / "ctx", memory_budget=10_000)
    config = FAST.replace(k_pre=4, ga_pre="ppr", ga_pre_params={"alpha": 0.1}, k_post=2)
    out = evaluate_trial(ctx, config, "ppr(0.1)", seed=0)
    assert 0.0 <= out["objectives"]["val_error"] <= 1.0
    assert out["objectives"]["inference_time"] > 0


# ---------------------------------------------------------------------- one pipeline
@pytest.mark.parametrize(
    "arch",
    [
        dict(k_pre=3, ga_pre="aug_na", ma="concat", k_trans=2, k_post=0),
        dict(
            k_pre=2,
            ga_pre="ppr",
            ga_pre_params={"alpha": 0.1},
            ma="mean",
            k_trans=1,
            k_post=3,
            ga_post="ppr",
            ga_post_params={"alpha": 0.3},
        ),
    ],
)
def test_trial_equals_the_trainer(tmp_path: Path, arch: dict) -> None:
    """A trial on the cached hops gives exactly what trainer.run gives for the same config and
    seed (the search evaluates with the trainer's pipeline, post-processing included)."""
    from sgap_plugins.core.search.evaluation import HopStore, TrialContext
    from sgap_plugins.core.search.space import DesignSpace
    from sgap_plugins.core.trainer import run

    data = small_graph()
    config = FAST.replace(**arch)
    space = DesignSpace.paper()
    label = space.to_point(config)["ga_pre"]
    store = HopStore(tmp_path / "hops", data)
    ctx = TrialContext.create(store, space.graph_aggregators, 4, tmp_path / "ctx")
    trial = evaluate_trial(ctx, config, label, seed=7)
    _, ref = run(
        data.edge_index,
        data.x,
        data.y,
        data.train_mask,
        data.val_mask,
        data.test_mask,
        config,
        seed=7,
    )
    assert trial["val_acc"] == ref.val_acc and trial["test_acc"] == ref.test_acc
    assert trial["train_acc"] == ref.train_acc
    assert (trial["best_epoch"], trial["epochs_run"]) == (ref.best_epoch, ref.epochs_run)
    assert trial["objectives"]["params"] == ref.num_params
    assert trial["objectives"]["val_error"] == 1.0 - ref.val_acc


# ---------------------------------------------------------------------- executors
class InlineExecutor:
    """A second executor, trivial: runs each trial in this process when it is submitted."""

    capacity = 1

    def __init__(self) -> None:
        self.ctx = None
        self.finished: list = []
        self.submitted: list[int] = []
        self.closed = False

    @property
    def running(self) -> int:
        return len(self.finished)

    def start(self, prepare, jobs: int) -> None:
        self.ctx = prepare()

    def submit(self, job) -> None:
        from sgap_plugins.core.search.executors import run_trial

        self.submitted.append(job.trial)
        self.finished.append(run_trial(evaluate_trial, self.ctx, job))

    def wait(self) -> list:
        out, self.finished = self.finished, []
        return out

    def close(self) -> None:
        self.closed = True


def test_search_runs_through_another_executor(tmp_path: Path) -> None:
    """The engine drives any Executor: an in-process one gives the trials the default
    process pool gives (same seed, one at a time)."""
    from sgap_plugins.core.search import Executor

    inline = InlineExecutor()
    assert isinstance(inline, Executor)
    kw = dict(objectives=["val_error", "params"], seed=2, n_startup=2)
    a = engine(tmp_path / "inline", 4, executor=inline, **kw).run()
    b = engine(tmp_path / "pool", 4, **kw).run()
    assert inline.submitted == [0, 1, 2, 3] and inline.closed

    def key(result):  # the deterministic results (measured times differ between runs)
        return [
            (t.trial, t.status, t.point, t.val_acc, t.test_acc, t.objectives["params"])
            for t in result.trials
        ]

    assert key(a) == key(b) and len(a.trials) == 4
    with pytest.raises(TypeError, match="Executor"):
        engine(tmp_path / "bad", 1, executor=object())


# ---------------------------------------------------------------------- resume
def finished_search(tmp_path: Path, max_evals: int = 3) -> Path:
    out = tmp_path / "run"
    engine(out, max_evals, seed=1, n_startup=max_evals).run()
    return out


def test_resume_stops_at_a_corrupt_or_foreign_record(tmp_path: Path) -> None:
    """A corrupt line that is not the last, or a record of another schema, stops --resume with
    an error naming the file and the line (its trial is neither dropped nor re-run); a torn
    last line is dropped and its trial run again."""
    from sgap_plugins.core.search import JournalError
    from sgap_plugins.core.search.journal import SCHEMA_VERSION

    out = finished_search(tmp_path)
    journal = out / "trials.jsonl"
    lines = journal.read_text().splitlines()
    assert [json.loads(x)["schema"] for x in lines] == [SCHEMA_VERSION] * 3

    journal.write_text("\n".join([lines[0], lines[1][:25], lines[2]]) + "\n")
    with pytest.raises(JournalError, match=rf"{journal}, line 2: not a trial record"):
        engine(out, 4, seed=1, n_startup=3, resume=True).run()

    old = {**json.loads(lines[2]), "schema": SCHEMA_VERSION + 1}
    journal.write_text("\n".join([lines[0], lines[1], json.dumps(old)]) + "\n")
    with pytest.raises(JournalError, match=rf"{journal}, line 3: .*schema {SCHEMA_VERSION + 1}"):
        engine(out, 4, seed=1, n_startup=3, resume=True).run()
    assert journal.read_text().splitlines()[2] == json.dumps(old)  # left as it was

    journal.write_text("\n".join([lines[0], lines[1], lines[2][:-10]]))  # killed mid-write
    assert [t.trial for t in read_trials(journal)] == [0, 1]
    result = engine(out, 3, seed=1, n_startup=3, resume=True).run()
    assert [t.trial for t in result.trials] == [0, 1, 2]
    assert [json.loads(x)["trial"] for x in journal.read_text().splitlines()] == [0, 1, 2]


def test_read_trials_line_rules(tmp_path: Path) -> None:
    from sgap_plugins.core.search import JournalError, Trial

    path = tmp_path / "trials.jsonl"
    good = [Trial(i, {"k_pre": i}, {}, "ok", {"val_error": 0.5}).to_json() for i in range(2)]
    path.write_text(good[0] + "\n\n" + good[1] + "\n")  # blank lines hold no data
    assert [t.trial for t in read_trials(path)] == [0, 1]
    path.write_text(good[0] + "\n" + good[1])  # no final newline: a torn write
    assert [t.trial for t in read_trials(path)] == [0]
    for bad, why in [
        ("[1, 2]", "not an object"),
        ('{"trial": 1}', "schema None"),
        (good[1].replace('"status": "ok"', '"status": "done"'), "'status' must be one of"),
        (good[1].replace('"seconds"', '"secs"'), "unknown \\['secs'\\]"),
    ]:
        path.write_text(good[0] + "\n" + bad + "\n")  # complete last line: not torn
        with pytest.raises(JournalError, match=rf"line 2: not a trial record .*{why}"):
            read_trials(path)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 1 / 3])
def test_good_fraction_sets_tpe_good_set(tmp_path: Path, fraction: float) -> None:
    """hyperopt's own split (``tpe.ap_split_trials``) with the engine's ``gamma`` keeps the
    best ``⌈q·T⌉`` of ``T`` trials (at most hyperopt's cap of 25), checked against a sort
    for every T up to 300, the multiples of 10 included (where ``q·√T`` rounds up)."""
    from hyperopt import tpe

    search = engine(tmp_path / "run", 1, good_fraction=fraction)
    rng = np.random.default_rng(0)
    for t in range(1, 301):
        losses = rng.permutation(t).astype(float)
        idxs = np.arange(t)
        # the observed "values" are the trial ids, so the split returns which trials
        below, _ = tpe.ap_split_trials(idxs, idxs, idxs, losses, **search._tpe_gamma(t))
        expected = min(math.ceil(fraction * t - 1e-9), 25)
        assert sorted(below) == sorted(idxs[np.argsort(losses)[:expected]]), t
    assert engine(tmp_path / "old", 1, good_fraction=None)._tpe_gamma(60) == {}
    with pytest.raises(ValueError, match="good_fraction"):
        engine(tmp_path / "bad", 1, good_fraction=0.0)


def test_tpe_history_leaves_out_inert_keys(tmp_path: Path, monkeypatch) -> None:
    """The history handed to TPE holds ``ga_pre`` and ``ma`` only for trials with
    ``k_pre > 0`` and ``ga_post`` only for ``k_post > 0``; ``k_pre`` itself is always there."""
    from hyperopt import tpe

    seen = {}
    real = tpe.suggest

    def spy(new_ids, domain, trials, seed, **kwargs):
        seen["miscs"] = [t["misc"] for t in trials.trials]
        return real(new_ids, domain, trials, seed, **kwargs)

    monkeypatch.setattr(tpe, "suggest", spy)
    search = engine(tmp_path / "run", 1, n_startup=1)
    space = search.space
    arch = {"ga_pre": "ppr(0.1)", "ma": "max", "k_trans": 2, "ga_post": "aug_na"}
    points = [{**arch, "k_pre": k, "k_post": p} for k, p in ((0, 3), (2, 0), (0, 0), (4, 5))]
    history = [
        Trial(i, p, {}, "ok", {"val_error": 0.1 * i, "inference_time": 1e-5 * (4 - i)})
        for i, p in enumerate(points)
    ]
    space.validate(search.propose(len(history), history))
    for misc, p in zip(seen["miscs"], points, strict=True):
        held = {k for k, v in misc["idxs"].items() if v}
        assert held == set(space.active_keys(p))
        assert ("ga_pre" in held) == (p["k_pre"] > 0) and ("ga_post" in held) == (p["k_post"] > 0)


def test_resume_of_a_search_stored_before_good_fraction(tmp_path: Path) -> None:
    """A ``search.json`` without ``good_fraction`` and ``startup`` (written before they
    existed) resumes with hyperopt's own split and random start-up, which that search was
    run with."""
    out = tmp_path / "run"
    engine(out, 2).run()
    stored = json.loads((out / "search.json").read_text())
    del stored["good_fraction"], stored["startup"]
    (out / "search.json").write_text(json.dumps(stored))
    resumed = engine(out, 3, resume=True)
    resumed.run()
    assert resumed.good_fraction is None and resumed.startup == "random"
    assert json.loads((out / "search.json").read_text()).get("good_fraction", None) is None


def test_startup_is_a_latin_hypercube(tmp_path: Path) -> None:
    """The ``n_startup`` proposals after the warm-start points are the space's Latin
    hypercube for the search seed, whatever the history; TPE proposes after them."""
    search = engine(tmp_path / "run", 12, n_startup=6, seed=5, warm_start=True)
    warm = len(search.warm_start_points())
    design = search.space.latin_hypercube(6, 5)
    got = [search.propose(warm + i, []) for i in range(6)]
    assert got == design
    history = [
        Trial(i, p, {}, "ok", {"val_error": 0.5 - 0.01 * i, "inference_time": 1e-5})
        for i, p in enumerate(design)
    ]
    after = search.propose(warm + 6, history)
    search.space.validate(after)
    assert after not in design
    with pytest.raises(ValueError, match="startup"):
        engine(tmp_path / "bad", 1, startup="sobol")
