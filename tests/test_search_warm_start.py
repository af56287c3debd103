"""Warm start: the presets that lie in the space are the first proposals of a search."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from test_search_engine import FAST, engine, small_graph

from sgap_plugins.core.config import PRESETS, SGAPConfig
from sgap_plugins.core.search import DesignSpace, SearchEngine, TrainingRanges, read_trials
from sgap_plugins.core.search.space import PAPER_GRAPH_AGGREGATORS, AggregatorChoice
from sgap_plugins.recipes import recipe

OBJECTIVES = ["val_error", "params"]  # deterministic, so reruns compare exactly
# The training hyperparameters of every trial when the space does not search them (FAST,
# test_search_engine's base config): a warm-start trial is the preset's architecture with them.
FAST_TRAINING = {
    k: getattr(FAST, k)
    for k in ("hidden", "dropout", "input_dropout", "lr", "weight_decay", "epochs", "patience")
}


def preset_points(space: DesignSpace, dataset: str | None = None) -> list[tuple[str, dict]]:
    """The reference: every preset, in table order, that ``to_point`` accepts (with its
    recipe for ``dataset`` and clipped into the training ranges when those are searched),
    each point once."""
    out: list[tuple[str, dict]] = []
    for name, config in PRESETS.items():
        if space.training is not None:
            found = recipe(dataset, name) if dataset else None
            config = space.clip_training(config.replace(**(found or {})))
        try:
            point = space.to_point(config)
        except ValueError:
            continue
        if all(point != p for _, p in out):
            out.append((name, point))
    return out


def head(result, p: int) -> list[tuple[str | None, dict]]:
    return [(t.extra.get("warm_start"), t.point) for t in result.trials[:p]]


def key(result) -> list:
    """What a rerun must reproduce (measured times excepted)."""
    return [
        (t.trial, t.point, t.val_acc, [t.objectives[o] for o in OBJECTIVES], t.extra)
        for t in result.trials
    ]


def test_paper_space_starts_from_the_presets(tmp_path: Path) -> None:
    """In the paper space every preset but GBP (its fixed decay is not the space's
    learnable ``weighted``) is proposed first, in table order, marked with its name; TPE
    follows, off the presets. With two workers, a search stopped inside the warm start and
    resumed gives the same trials as an uninterrupted one, presets and TPE alike."""
    space = DesignSpace.paper()
    ref = preset_points(space)
    assert [n for n, _ in ref] == [n for n in PRESETS if n != "gbp"]
    p = len(ref)
    kw = dict(objectives=OBJECTIVES, seed=5, n_startup=1, workers=2, warm_start=True)
    # p + 3: after the presets, one random start-up proposal, then TPE (lag 1)
    a = engine(tmp_path / "a", p + 3, **kw).run()
    engine(tmp_path / "b", 3, **kw).run()
    b = engine(tmp_path / "b", p + 3, resume=True, **kw).run()
    assert head(a, p) == ref
    for t, (name, _) in zip(a.trials, ref, strict=False):  # trained as the preset is built
        arch = SGAPConfig.from_dict(t.config).replace(**FAST_TRAINING)
        assert arch == PRESETS[name].replace(**FAST_TRAINING)
    rest = a.trials[p:]
    assert rest and all("warm_start" not in t.extra for t in rest)
    assert all(t.point not in [q for _, q in ref] for t in rest)
    assert key(a) == key(b)
    assert json.loads((tmp_path / "a" / "search.json").read_text())["warm_start_points"] == [
        {"preset": n, "point": q} for n, q in ref
    ]
    rows = list(csv.DictReader((tmp_path / "a" / "trials.csv").open()))
    assert [r["warm_start"] for r in rows] == [n for n, _ in ref] + [""] * 3


def test_restricted_space_skips_the_presets_outside_it(tmp_path: Path) -> None:
    """Presets whose message aggregator or depth the space lacks are skipped."""
    space = DesignSpace(
        k_pre=(0, 6),
        k_trans=(1, 3),
        k_post=(0, 10),
        graph_aggregators=PAPER_GRAPH_AGGREGATORS,
        message_aggregators=[
            AggregatorChoice("none", "none"),
            AggregatorChoice("mean", "mean"),
            AggregatorChoice("adaptive", "adaptive"),
        ],
    )
    ref = preset_points(space)
    # concat (SIGN), weighted (PaSca-V1, GBP) are not choices; S²GC's K_pre = 10 is > 6
    assert [n for n, _ in ref] == ["sgc", "appnp_post", "pasca_v2", "pasca_v3"]
    result = engine(
        tmp_path / "run", len(ref) + 1, space=space, seed=1, n_startup=1, warm_start=True
    ).run()
    assert head(result, len(ref)) == ref
    assert "warm_start" not in result.trials[-1].extra


def test_duplicate_presets_are_proposed_once(tmp_path: Path, monkeypatch) -> None:
    """Two presets with the same point (here: the same architecture, another epoch budget,
    in a space without training ranges) give one warm-start point, named after the first."""
    from sgap_plugins.core.search import engine as engine_module

    table = {
        "sgc": PRESETS["sgc"],
        "sgc_long": PRESETS["sgc"].replace(epochs=500),
        "gbp": PRESETS["gbp"],
        "sign": PRESETS["sign"],
    }
    monkeypatch.setattr(engine_module, "PRESETS", table)
    space = DesignSpace.paper()
    points = engine(tmp_path / "run", 3, warm_start=True).warm_start_points()
    assert points == [
        ("sgc", space.to_point(table["sgc"])),
        ("sign", space.to_point(table["sign"])),
    ]


@pytest.mark.parametrize("dataset", ["csbm", "cora"])
def test_search_training_uses_recipes_and_clips(tmp_path: Path, dataset: str) -> None:
    """With training ranges a preset's training values are the dataset's recipe (Cora) or
    its own (csbm: no recipe), clipped into the ranges, and the trials train with them."""
    ranges = TrainingRanges(lr=(1e-3, 0.1), hidden=(32, 64, 128), input_dropout=(0.1, 0.4))
    space = DesignSpace.paper(training=ranges)
    data = dataclasses.replace(small_graph(), name=dataset)
    ref = preset_points(space, dataset)
    if dataset == "cora":  # the recipes change something: PaSca-V2 validated with hidden 256
        assert recipe("cora", "pasca_v2") == {"hidden": 256}
        v2 = dict(ref)["pasca_v2"]
        assert v2["hidden"] == 128 != PRESETS["pasca_v2"].hidden  # 256 snapped to 128
    else:
        assert recipe(dataset, "pasca_v2") is None
        assert dict(ref)["pasca_v2"]["hidden"] == PRESETS["pasca_v2"].hidden
    assert dict(ref)["sgc"]["lr"] == 0.1  # 0.2 clipped
    assert dict(ref)["sgc"]["input_dropout"] == 0.1  # 0.0 clipped
    out = tmp_path / "run"
    result = SearchEngine(
        data,
        out,
        len(ref),
        space=space,
        base_config=FAST,
        seed=2,
        warm_start=True,
        progress=False,
        hop_cache=tmp_path / "hops",
        presets=False,
    ).run()
    assert head(result, len(ref)) == ref
    for t in result.trials:  # each trial trains with its point's values
        assert space.to_point(SGAPConfig.from_dict(t.config)) == t.point


def test_resume_checks_the_warm_start(tmp_path: Path) -> None:
    """A search.json written before warm start existed resumes as a cold search; a warm
    start, or other warm-start points, than the stored search's are refused."""
    out = tmp_path / "run"
    engine(out, 1, seed=1).run()
    path = out / "search.json"
    stored = json.loads(path.read_text())
    assert stored["warm_start"] is False and stored["warm_start_points"] == []
    del stored["warm_start"], stored["warm_start_points"]  # as written before warm start
    path.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"differs in \['warm_start', 'warm_start_points'\]"):
        engine(out, 2, seed=1, warm_start=True, resume=True).run()
    assert [t.trial for t in engine(out, 2, seed=1, resume=True).run().trials] == [0, 1]

    # the same folder as if warm-started with presets that have changed since
    warm = engine(out, 2, seed=1, warm_start=True).settings()["warm_start_points"]
    warm[1]["point"]["k_pre"] += 1
    path.write_text(json.dumps({**stored, "warm_start": True, "warm_start_points": warm}))
    with pytest.raises(ValueError, match=r"differs in \['warm_start_points'\]"):
        engine(out, 3, seed=1, warm_start=True, resume=True).run()


def test_cli_warm_start(tmp_path: Path, capsys) -> None:
    """`sgap search --warm-start --search-training`: a 10-trial search whose first trials
    are the presets with their own training values (csbm has no recipe), recorded in
    trials.jsonl, trials.csv and search.json."""
    from sgap_plugins.cli import main

    out = tmp_path / "cli"
    args = ["search", "--max-evals", "10", "--out", str(out), "--no-progress", "--no-presets"]
    args += ["--train", "epochs=2", "--train", "patience=2", "--objectives", "val_error,params"]
    assert main([*args, "--warm-start", "--search-training"]) == 0
    ref = preset_points(DesignSpace.paper(training=TrainingRanges()), "csbm")
    assert f"warm start from {[n for n, _ in ref]}" in capsys.readouterr().err
    trials = sorted(read_trials(out / "trials.jsonl"), key=lambda t: t.trial)
    assert len(trials) == 10
    assert [(t.extra.get("warm_start"), t.point) for t in trials[: len(ref)]] == ref
    assert all("warm_start" not in t.extra for t in trials[len(ref) :])
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["warm_start"] for r in rows] == [n for n, _ in ref] + [""] * (10 - len(ref))
    assert json.loads((out / "search.json").read_text())["warm_start"] is True


def test_front_table_names_the_preset() -> None:
    """The front table shows a warm-start trial's number with its preset."""
    from sgap_plugins.core.search import SearchResult, Trial
    from sgap_plugins.core.search.report import front_table

    space = DesignSpace.paper()
    trials = [
        Trial(i, space.to_point(PRESETS[name]), {}, "ok", {"val_error": err, "params": par})
        for i, (name, err, par) in enumerate([("sgc", 0.3, 10.0), ("sign", 0.2, 50.0)])
    ]
    for t in trials:
        t.val_acc, t.test_acc = 1 - t.objectives["val_error"], 0.5
    trials[0].extra["warm_start"] = "sgc"
    rows = front_table(SearchResult.from_trials(trials, OBJECTIVES)).splitlines()[2:]
    assert [r.split()[1] for r in rows] == ["1", "0"]  # sorted by val_error
    assert rows[1].split()[2] == "(sgc)" and "(" not in rows[0].split()[2]


def test_reference_presets_train_with_the_recipes(tmp_path: Path) -> None:
    """The presets a search compares against (``presets.json``) are those of ``sgap train
    --preset P --dataset D``: on a graph named Cora PaSca-V2 trains with its recipe's hidden
    256, and its result equals ``trainer.run`` on propagation of the edge index. The cache
    holds while seed and configurations match; a file without configurations (as written
    before recipes applied) is evaluated again."""
    from sgap_plugins.core.trainer import run

    data = dataclasses.replace(small_graph(), name="cora")
    out = tmp_path / "run"
    search = SearchEngine(
        data, out, 1, base_config=FAST, seed=3, progress=False, hop_cache=tmp_path / "hops"
    )
    refs = search.reference_presets()
    stored = json.loads((out / "presets.json").read_text())
    v2 = SGAPConfig.from_dict(stored["configs"]["pasca_v2"])
    assert v2 == PRESETS["pasca_v2"].replace(hidden=256, epochs=FAST.epochs, patience=FAST.patience)
    masks = (data.train_mask, data.val_mask, data.test_mask)
    _, expected = run(data.edge_index, data.x, data.y, *masks, v2, seed=3)
    assert refs["pasca_v2"]["val_acc"] == pytest.approx(expected.val_acc, abs=1e-6)
    assert refs["pasca_v2"]["test_acc"] == pytest.approx(expected.test_acc, abs=1e-6)

    marked = {**stored, "presets": {**refs, "sgc": {**refs["sgc"], "val_acc": -1.0}}}
    (out / "presets.json").write_text(json.dumps(marked))
    assert search.reference_presets()["sgc"]["val_acc"] == -1.0  # cached
    del marked["configs"]
    (out / "presets.json").write_text(json.dumps(marked))
    assert search.reference_presets()["sgc"]["val_acc"] == refs["sgc"]["val_acc"]
