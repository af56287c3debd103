"""Search trials on Ray (issue 13, point 2): :class:`RayExecutor` and ``sgap search
--executor ray``.

The in-process tests share one local Ray runtime (2 CPUs, started by a module fixture: each
start costs ~5 s); the CLI tests run drivers in subprocesses that start their own. Ray's
local runtime binds to 127.0.0.1 here (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ray
is imported, makes Ray use the loopback address instead of the machine's), and every
subprocess and wait has a timeout. Skipped without Ray, failing with ``SGAP_REQUIRE_RAY=1``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import require_ray
from test_search_engine import FAST, engine

from sgap_plugins.core.search import RayExecutor, SearchEngine, TrialJob, read_trials
from sgap_plugins.core.search.evaluation import evaluate_trial
from sgap_plugins.core.search.executors import run_trial

TESTS = Path(__file__).resolve().parent
# Ray's node address becomes 127.0.0.1 (it is read once, when ray is imported)
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
CLI = "import sys; from sgap_plugins.cli import main; sys.exit(main(sys.argv[1:]))"


# ------------------------------------------------------------ trial functions (on workers)
def tagged_trial(ctx, config, ga_pre, seed):
    """evaluate_trial, plus which worker process and which context object ran it."""
    result = evaluate_trial(ctx, config, ga_pre, seed)
    return {**result, "pid": os.getpid(), "context_id": id(ctx)}


def first_call_hangs(ctx, config, ga_pre, seed, marker: str):
    """The first call (over all workers) writes its pid to ``marker`` and hangs until it is
    killed; the others evaluate normally."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return tagged_trial(ctx, config, ga_pre, seed)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    time.sleep(120)
    raise RuntimeError("the worker was not killed")


def first_calls_die(ctx, config, ga_pre, seed, marker: str, deaths: int):
    """The first ``deaths`` calls kill their own worker process (SIGKILL); then normal."""
    for i in range(deaths):
        try:
            os.close(os.open(f"{marker}.{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        os.kill(os.getpid(), signal.SIGKILL)
    return evaluate_trial(ctx, config, ga_pre, seed)


def sleeping_trial(ctx, config, ga_pre, seed):
    time.sleep(120)


# ------------------------------------------------------------ fixtures and helpers
@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray runtime with 2 CPUs for this module's in-process tests; its workers
    import this module (PYTHONPATH) for the trial functions above. Executors find Ray
    connected and leave the runtime up; the fixture shuts it down."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in LOOPBACK.items():
            mp.setenv(key, value)  # before ray is imported
        mp.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        )
        ray = require_ray()
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=200 << 20,
            logging_level="ERROR",
            log_to_driver=False,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


def run_jobs(executor: RayExecutor, jobs: list[TrialJob], timeout: float = 120) -> dict:
    """Drive ``executor`` as the engine does (submit while there is room, wait)."""
    todo, outcomes = list(jobs), {}
    deadline = time.monotonic() + timeout
    while todo or executor.running:
        assert time.monotonic() < deadline, "the trials did not finish in time"
        while todo and executor.running < executor.capacity:
            executor.submit(todo.pop(0))
        for outcome in executor.wait():
            outcomes[outcome.trial] = outcome
    return outcomes


POINTS = [
    {
        "k_pre": 2,
        "ga_pre": "ppr(0.1)",
        "ma": "mean",
        "k_trans": 1,
        "k_post": 2,
        "ga_post": "aug_na",
    },
    {
        "k_pre": 3,
        "ga_pre": "triangle",
        "ma": "concat",
        "k_trans": 2,
        "k_post": 0,
        "ga_post": "aug_na",
    },
    {
        "k_pre": 4,
        "ga_pre": "aug_na",
        "ma": "adaptive",
        "k_trans": 2,
        "k_post": 3,
        "ga_post": "ppr(0.3)",
    },
]


def jobs_for(eng: SearchEngine) -> list[TrialJob]:
    return [
        TrialJob(i, eng.space.to_config(p, FAST).to_dict(), p["ga_pre"], 0)
        for i, p in enumerate(POINTS)
    ]


def store_files(root: Path) -> dict[Path, tuple[int, int]]:
    """Inode and modification time of every hop store file and its metadata (the lock
    files are touched by every lookup)."""
    files = [*root.rglob("*.npy"), *root.rglob("*.json")]
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def session_processes(sid: int) -> dict[int, str]:
    """``{pid: command line}`` of the live processes in session ``sid``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != sid:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            found[int(entry.name)] = cmd.strip()
    return found


def kill_session(sid: int) -> None:
    for pid in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cli_env() -> dict[str, str]:
    return {**os.environ, **LOOPBACK, "PYTHONUNBUFFERED": "1"}


# ------------------------------------------------------------ in-process (shared runtime)
def test_ray_search_equals_the_local_pool(ray_runtime, tmp_path: Path) -> None:
    """A 6-trial search as Ray tasks on 2 CPUs records 6 trials and a front, proposes the
    points the local pool proposes with the same seed and capacity (fixed-lag determinism),
    with the same deterministic results; the hop stores the pool built are reused, never
    rewritten, and each worker process builds its context once."""
    kw = dict(objectives=["val_error", "params"], seed=3, n_startup=2)
    pool = engine(tmp_path / "pool", 6, workers=2, **kw).run()
    stores = store_files(tmp_path / "hops")
    executor = RayExecutor(2, trial_fn=tagged_trial)
    on_ray = engine(tmp_path / "ray", 6, executor=executor, **kw).run()

    assert sorted(t.trial for t in read_trials(tmp_path / "ray" / "trials.jsonl")) == list(range(6))
    front = json.loads((tmp_path / "ray" / "pareto.json").read_text())["points"]
    assert len(front) >= 1 and len(on_ray.front) == len(front)
    assert all(t.status == "ok" for t in on_ray.trials)

    def key(result):  # the deterministic part (measured times differ between runs)
        return [(t.trial, t.point, t.val_acc, t.objectives["params"]) for t in result.trials]

    assert key(on_ray) == key(pool)
    assert store_files(tmp_path / "hops") == stores  # built once (by the pool run), only read since
    contexts: dict[int, set[int]] = {}
    for t in on_ray.trials:
        contexts.setdefault(t.extra["pid"], set()).add(t.extra["context_id"])
    assert all(len(ids) == 1 for ids in contexts.values()), contexts
    assert ray_runtime.is_initialized()  # the executor leaves a runtime it did not start


def test_object_store_share_needs_no_files(ray_runtime, tmp_path: Path) -> None:
    """share="object_store": the stores, graph and labels travel through Ray's object store
    once; with every file deleted after start(), the workers still compute what the trial
    function computes in this process on the files."""
    eng = engine(tmp_path / "run", 3)
    ctx = eng.prepare()
    jobs = jobs_for(eng)
    expected = {j.trial: run_trial(evaluate_trial, ctx, j) for j in jobs}
    executor = RayExecutor(2, trial_fn=tagged_trial, share="object_store")
    executor.start(eng.prepare, len(jobs))
    try:
        shutil.rmtree(tmp_path / "hops")
        shutil.rmtree(tmp_path / "run" / "context")
        got = run_jobs(executor, jobs)
    finally:
        executor.close()
    assert ray_runtime.is_initialized()  # a runtime it did not start stays up
    for n, outcome in got.items():
        assert outcome.status == "ok", outcome.error
        assert outcome.result is not None and expected[n].result is not None
        for k in ("val_acc", "test_acc", "train_acc", "best_epoch"):
            assert outcome.result[k] == expected[n].result[k], k
        assert outcome.result["objectives"]["params"] == expected[n].result["objectives"]["params"]


def test_path_share_on_a_node_without_the_files_fails_the_trial(ray_runtime, tmp_path) -> None:
    """share="path" where the workers cannot see the stores (as on a cluster without shared
    storage): every trial fails, saying to share storage or use the object store."""
    eng = engine(tmp_path / "run", 1)
    executor = RayExecutor(1, trial_fn=tagged_trial)
    executor.start(eng.prepare, 1)
    try:
        shutil.rmtree(tmp_path / "run" / "context")
        (outcome,) = run_jobs(executor, jobs_for(eng)[:1]).values()
    finally:
        executor.close()
    assert outcome.status == "fail"
    assert "share='object_store'" in (outcome.error or "")


def test_killed_worker_costs_only_its_trial(ray_runtime, tmp_path: Path) -> None:
    """Killing the worker process that runs a trial (SIGKILL, mid-trial): Ray retries that
    trial once on a fresh worker and the search still records every trial."""
    marker = tmp_path / "hanging.pid"
    trial_fn = functools.partial(first_call_hangs, marker=str(marker))
    eng = engine(tmp_path / "run", 4, executor=RayExecutor(2, trial_fn=trial_fn), seed=1)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            eng.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    pid = None
    while pid is None:
        assert time.monotonic() < deadline, "no trial started in time"
        assert thread.is_alive() or failure, "the search ended before a trial hung"
        text = marker.read_text() if marker.exists() else ""
        pid = int(text) if text.endswith("\n") else None
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=180)
    assert not thread.is_alive(), "the search did not finish after the kill"
    assert not failure, failure
    trials = read_trials(tmp_path / "run" / "trials.jsonl")
    assert sorted(t.trial for t in trials) == [0, 1, 2, 3]
    assert all(t.status == "ok" for t in trials), [t.error for t in trials]
    assert pid not in {t.extra["pid"] for t in trials}  # the killed trial ran again elsewhere


def test_worker_dying_twice_fails_its_trial(ray_runtime, tmp_path: Path) -> None:
    """A trial whose worker dies on the first run and on its retry is a failed trial with
    Ray's reason; the search goes on."""
    trial_fn = functools.partial(first_calls_die, marker=str(tmp_path / "death"), deaths=2)
    executor = RayExecutor(1, trial_fn=trial_fn)
    result = engine(tmp_path / "run", 3, executor=executor, seed=1).run()
    status = {t.trial: t.status for t in result.trials}
    assert status == {0: "fail", 1: "ok", 2: "ok"}
    assert "Ray task failed (WorkerCrashedError" in (result.trials[0].error or "")


def test_timed_out_trial_is_cancelled(ray_runtime, tmp_path: Path) -> None:
    eng = engine(tmp_path / "run", 1)
    executor = RayExecutor(1, trial_fn=sleeping_trial, trial_timeout=2.0)
    executor.start(eng.prepare, 1)
    start = time.monotonic()
    try:
        (outcome,) = run_jobs(executor, jobs_for(eng)[:1], timeout=60).values()
    finally:
        executor.close()
    assert outcome.status == "fail" and outcome.error == "timed out after 2 s"
    assert 2.0 <= time.monotonic() - start < 30


def test_bad_arguments(ray_runtime) -> None:
    with pytest.raises(ValueError, match="share must be one of"):
        RayExecutor(share="nfs")
    with pytest.raises(ValueError, match="num_cpus sizes a local Ray runtime"):
        RayExecutor(address="auto", num_cpus=2)
    with pytest.raises(ValueError, match="workers must be a positive int"):
        RayExecutor(0)


def test_context_from_arrays_equals_the_files(tmp_path: Path) -> None:
    """TrialContext.from_arrays(ctx.entries, ctx.arrays()) (the object-store path, without
    Ray) gives the trials the file-backed context gives; mismatched arrays are refused."""
    from sgap_plugins.core.search import TrialContext

    eng = engine(tmp_path / "run", 1)
    ctx = eng.prepare()
    arrays = ctx.arrays()
    copy = TrialContext.from_arrays(ctx.entries, arrays, ctx.memory_budget)
    for job in jobs_for(eng):
        a, b = run_trial(evaluate_trial, ctx, job), run_trial(evaluate_trial, copy, job)
        assert a.result is not None and b.result is not None, (a.error, b.error)
        assert (a.result["val_acc"], a.result["test_acc"]) == (
            b.result["val_acc"],
            b.result["test_acc"],
        )
    label = next(iter(ctx.entries))
    bad = {**arrays, "hops": {**arrays["hops"], label: arrays["hops"][label][:2]}}
    with pytest.raises(ValueError, match=f"hops {label!r} hold"):
        TrialContext.from_arrays(ctx.entries, bad)
    bad = {**arrays, "labels": {**arrays["labels"], "y": arrays["labels"]["y"].astype("int32")}}
    with pytest.raises(ValueError, match=r"labels\['y'\] must hold a 1-D int64 array"):
        TrialContext.from_arrays(ctx.entries, bad)


def test_executor_ray_without_ray_is_a_one_line_error(monkeypatch, capsys, tmp_path) -> None:
    """`--executor ray` where ray cannot be imported (runs in every env: the import is
    blocked) stops at once with what to install."""
    from sgap_plugins.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["search", "--executor", "ray", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert (
        err == "sgap search: error: `--executor ray` needs Ray: pip install 'sgap-plugins[ray]'\n"
    )
    assert not (tmp_path / "x").exists()
    assert main(["search", "--ray-address", "auto", "--out", str(tmp_path / "x")]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    assert main(["search", "--ray-share", "object-store", "--out", str(tmp_path / "x")]) == 2
    assert "--ray-share needs --executor ray" in capsys.readouterr().err


# ------------------------------------------------------------ CLI drivers in subprocesses
def test_unreachable_ray_address_is_a_quick_one_line_error(tmp_path: Path) -> None:
    require_ray()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["search", "--dataset", "csbm", "--executor", "ray", "--no-progress"]
    args += ["--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path / "x")]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - start < 30
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sgap search")]
    assert errors == [
        f"sgap search: error: --ray-address 127.0.0.1:{port}: no Ray cluster there "
        "(Connection refused); start one with `ray start --head`, or drop --ray-address to "
        "run on a local Ray runtime"
    ]
    assert "Traceback" not in proc.stderr


def test_driver_killed_then_resumed(tmp_path: Path) -> None:
    """`kill -9` of a `sgap search --executor ray` driver after some trials are recorded:
    its local Ray runtime goes with it, and `--resume` completes the search without losing
    or repeating a finished trial."""
    require_ray()
    out = tmp_path / "run"
    args = ["search", "--dataset", "csbm", "--executor", "ray", "--workers", "2"]
    args += ["--max-evals", "8", "--seed", "1", "--objectives", "val_error,params"]
    args += ["--train", "epochs=3", "--train", "patience=3", "--no-presets", "--no-progress"]
    args += ["--out", str(out)]
    journal = out / "trials.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its session holds the Ray runtime it starts
    )
    try:
        deadline = time.monotonic() + 180
        while not (journal.exists() and len(journal.read_text().splitlines()) >= 2):
            assert time.monotonic() < deadline, "no trial finished in time"
            assert proc.poll() is None, proc.communicate(timeout=10)[1].decode()[-3000:]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # Ray's raylet, GCS and workers follow the driver (Ray ties them to its life);
        # its two agents only exit once the GCS has been gone a minute: killed below
        deadline = time.monotonic() + 30
        core = ("raylet", "gcs_server", "ray::IDLE", "ray::_run_task")
        while any(c in cmd for cmd in session_processes(proc.pid).values() for c in core):
            assert time.monotonic() < deadline, session_processes(proc.pid)
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        kill_session(proc.pid)
    before = read_trials(journal)
    assert 2 <= len(before) < 8
    resumed = subprocess.Popen(
        [sys.executable, "-c", CLI, *args, "--resume"],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err[-3000:]
        # the runtime the resumed driver started was shut down when it finished
        deadline = time.monotonic() + 30
        while session_processes(resumed.pid):
            assert time.monotonic() < deadline, session_processes(resumed.pid)
            time.sleep(0.5)
    finally:
        if resumed.poll() is None:
            resumed.kill()
        resumed.wait(timeout=30)
        kill_session(resumed.pid)
    after = read_trials(journal)
    ids = [t.trial for t in after]
    assert sorted(ids) == list(range(8)) and len(set(ids)) == 8
    for t in before:  # finished trials are neither lost nor re-run
        assert next(u for u in after if u.trial == t.trial).__dict__ == t.__dict__
    assert json.loads((out / "pareto.json").read_text())["points"]
