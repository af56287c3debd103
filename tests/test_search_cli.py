"""`sgap train --config` with a plain SGAPConfig JSON and with a pareto.json + --index."""

from __future__ import annotations

import json
from pathlib import Path

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
