"""`sgap train --config` with a plain SGAPConfig JSON and with a pareto.json + --index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sgap_plugins.cli import main
from sgap_plugins.core.config import SGAPConfig


def test_train_accepts_config_and_pareto_json(tmp_path: Path, capsys) -> None:
    config = SGAPConfig(k_pre=2, epochs=3, patience=3).to_dict()
    plain = tmp_path / "config.json"
    plain.write_text(json.dumps(config))
    pareto = tmp_path / "pareto.json"
    pareto.write_text(
        json.dumps(
            {
                "objectives": ["val_error", "params"],
                "points": [
                    {"config": config, "objectives": {"val_error": 0.5, "params": 10.0}},
                    {"config": {**config, "k_pre": 1}, "objectives": {}},
                ],
                "hypervolume": 0.0,
            }
        )
    )
    assert main(["train", "--config", str(plain), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["k_pre"] == 2
    assert main(["train", "--config", str(pareto), "--index", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["k_pre"] == 1 and out["model"].endswith("pareto.json#1")
    assert main(["train", "--config", str(pareto)]) == 2  # which member?
    assert "--index 0..1" in capsys.readouterr().err
    assert main(["train", "--config", str(plain), "--index", "0"]) == 2


def test_key_value_options_share_one_parser() -> None:
    """--param, --train and --budget read KEY=VALUE alike: JSON values, true/false in any
    case, anything else a string."""
    from sgap_plugins.cli.common import parse_params

    got = parse_params(
        ["lr=0.01", "epochs=20", "learnable=TRUE", "ga_pre=ppr", " k =[1]"], "--train"
    )
    assert got == {"lr": 0.01, "epochs": 20, "learnable": True, "ga_pre": "ppr", "k": [1]}
    with pytest.raises(ValueError, match="--train expects KEY=VALUE, got 'lr'"):
        parse_params(["lr"], "--train")


def test_search_budget_must_be_a_number(tmp_path: Path, capsys) -> None:
    rc = main(["search", "--budget", "params=many", "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "--budget params='many': MAX must be a number" in capsys.readouterr().err


def test_search_resume_names_a_foreign_record(tmp_path: Path, capsys) -> None:
    """`sgap search --resume` on a trials.jsonl with a record of another schema stops with
    exit code 2 and names the file and line, instead of re-running that trial."""
    out = tmp_path / "run"
    args = ["search", "--max-evals", "2", "--out", str(out), "--no-progress", "--no-presets"]
    args += ["--train", "epochs=2", "--train", "patience=2", "--objectives", "val_error,params"]
    assert main(args) == 0
    journal = out / "trials.jsonl"
    lines = journal.read_text().splitlines()
    record = json.loads(lines[0])
    del record["schema"]  # as written before records carried a schema
    journal.write_text("\n".join([json.dumps(record), lines[1]]) + "\n")
    capsys.readouterr()
    assert main([*args, "--max-evals", "3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{journal}, line 1: not a trial record (record of schema None" in err
    assert journal.read_text().splitlines() == [json.dumps(record), lines[1]]
