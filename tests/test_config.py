"""SGAPConfig validation and serialisation, presets, and the SGAPModel they build."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from sgap_plugins import PRESETS, SGAPConfig, SGAPModel, preset

PRESET_NAMES = ["sgc", "sign", "s2gc", "gbp", "appnp_post", "pasca_v1", "pasca_v2", "pasca_v3"]


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "field, value, exc",
    [
        ("k_pre", -1, ValueError),
        ("k_pre", 65, ValueError),
        ("k_pre", 2.0, ValueError),
        ("k_pre", True, ValueError),
        ("k_trans", 0, ValueError),
        ("k_post", -1, ValueError),
        ("k_post", 65, ValueError),
        ("hidden", 0, ValueError),
        ("epochs", 0, ValueError),
        ("patience", 0, ValueError),
        ("batch_size", 0, ValueError),
        ("dropout", 1.0, ValueError),
        ("dropout", -0.1, ValueError),
        ("dropout", float("nan"), ValueError),
        ("input_dropout", 1.5, ValueError),
        ("lr", 0.0, ValueError),
        ("lr", -0.01, ValueError),
        ("lr", "0.01", ValueError),
        ("weight_decay", -1e-4, ValueError),
        ("ga_pre", "", ValueError),
        ("ga_post", None, ValueError),
        ("ma", 3, ValueError),
        ("ma_params", ["beta"], ValueError),
        ("ga_pre_params", {1: 0.5}, ValueError),
    ],
)
def test_validation_names_the_field(field, value, exc):
    with pytest.raises(exc, match=field):
        SGAPConfig(**{field: value})


def _build(cfg: SGAPConfig) -> None:
    """Everything that resolves a configuration's aggregators."""
    cfg.pre_aggregator()
    SGAPModel(cfg, 4, 3)  # ma and ga_post


@pytest.mark.parametrize("field", ["ga_pre", "ga_post", "ma"])
def test_unknown_aggregator_name_is_reported_when_built(field):
    """Validation does not consult the registry; building does, and the error names the
    setting and lists the registered names."""
    from sgap_plugins.core.plugins import graph_aggregator_classes, message_aggregator_classes

    cfg = SGAPConfig(**{field: "nope"})  # a plain value: no registry look-up yet
    known = message_aggregator_classes() if field == "ma" else graph_aggregator_classes()
    with pytest.raises(ValueError, match=rf"^{field}: unknown .* 'nope'") as info:
        _build(cfg)
    assert str(sorted(known)) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"ga_pre": "aug_na", "ga_pre_params": {"r": 1.5}}, ValueError, "ga_pre_params: .*r must"),
        ({"ga_pre": "ppr", "ga_pre_params": {"alpha": 0.0}}, ValueError, "ga_pre_params: .*alpha"),
        ({"ga_post": "ppr", "ga_post_params": {"alpha": 1.0}}, ValueError, "ga_post_params: .*alp"),
        ({"ga_pre": "aug_na", "ga_pre_params": {"alpha": 0.1}}, TypeError, "ga_pre_params: .*alp"),
        ({"ma": "weighted", "ma_params": {"beta": 2.0}}, ValueError, "ma_params: .*beta"),
        ({"ma": "mean", "ma_params": {"beta": 0.5}}, TypeError, "ma_params: .*beta"),
    ],
)
def test_aggregator_parameters_are_validated_when_built(kwargs, exc, match):
    cfg = SGAPConfig(**kwargs)
    with pytest.raises(exc, match=match):
        _build(cfg)


def test_validation_builds_no_registry_and_no_module(monkeypatch):
    """Constructing, replacing and serialising configurations (presets included) is pure:
    the plugin registry is not built, no torch module is constructed and the global random
    state is untouched. Observed through a counting wrapper around ``nn.Module.__init__``
    (the original still runs)."""
    from sgap_plugins.core import plugins

    built = []
    module_init = torch.nn.Module.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        module_init(self, *args, **kwargs)

    plugins.reload_plugins()
    monkeypatch.setattr(torch.nn.Module, "__init__", counting_init)
    rng = torch.get_rng_state()
    configs = [preset(n) for n in PRESETS]
    configs += [SGAPConfig(ma="adaptive"), SGAPConfig(ma="sign", ma_params={"hidden": 8})]
    configs += [c.replace(k_pre=1) for c in configs]
    configs += [SGAPConfig.from_json(c.to_json()) for c in configs]
    assert plugins._registry is None
    assert built == []
    assert torch.equal(torch.get_rng_state(), rng)
    SGAPModel(configs[0], 4, 3)  # the counter does count construction
    assert built and plugins._registry is not None


def test_same_seed_same_weights_from_preset_name_or_config():
    from sgap_plugins.core import plugins

    for name in PRESET_NAMES:
        plugins.reload_plugins()  # the first look-up builds the registry: it must not matter
        torch.manual_seed(0)
        by_name = SGAPModel(name, 8, 3).state_dict()
        plugins.reload_plugins()
        torch.manual_seed(0)
        by_config = SGAPModel(preset(name), 8, 3).state_dict()
        assert by_name.keys() == by_config.keys()
        assert all(torch.equal(by_name[k], by_config[k]) for k in by_name), name


def test_presets_are_immutable():
    cfg = preset("pasca_v1")
    with pytest.raises(TypeError):
        cfg.ma_params["x"] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.k_pre = 5
    with pytest.raises(TypeError):
        PRESETS["pasca_v1"] = cfg
    # A modified copy leaves the table intact, and the preset still builds.
    before = PRESETS["pasca_v1"].to_dict()
    changed = cfg.replace(ma_params={**cfg.ma_params, "beta": 0.5})
    params = changed.to_dict()["ma_params"]
    params["beta"] = 0.9  # to_dict hands out plain copies
    assert changed.ma_params["beta"] == 0.5
    assert PRESETS["pasca_v1"].to_dict() == before == preset("pasca_v1").to_dict()
    SGAPModel(preset("pasca_v1"), 4, 3)


def test_configs_pickle_hash_and_compare_with_dicts():
    cfg = SGAPConfig(ga_pre="ppr", ga_pre_params={"alpha": 0.2}, ma_params={})
    back = pickle.loads(pickle.dumps(cfg))
    assert back == cfg and hash(back) == hash(cfg)
    assert cfg.ga_pre_params == {"alpha": 0.2} and dict(cfg.ga_pre_params) == {"alpha": 0.2}
    assert len({cfg, back, cfg.replace(k_pre=3)}) == 2


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="k_hops"):
        SGAPConfig.from_dict({"k_hops": 3})


# ---------------------------------------------------------------------------- serialisation
@pytest.mark.parametrize("name", PRESET_NAMES)
def test_json_round_trip(name):
    cfg = preset(name)
    text = cfg.to_json()
    assert json.loads(text) == cfg.to_dict()
    back = SGAPConfig.from_json(text)
    assert back == cfg
    assert back.to_json() == text


def test_round_trip_custom_config():
    cfg = SGAPConfig(
        k_pre=4,
        ga_pre="ppr",
        ga_pre_params={"alpha": 0.2, "add_self_loops": False},
        ma="weighted",
        ma_params={"beta": 0.3, "learnable": True},
        k_trans=3,
        k_post=2,
        ga_post="aug_na",
        ga_post_params={"r": 0.0},
        lr=0.005,
    )
    assert SGAPConfig.from_json(cfg.to_json()) == cfg
    assert SGAPConfig.from_dict(json.loads(cfg.to_json())).ga_pre_params == {
        "alpha": 0.2,
        "add_self_loops": False,
    }


def test_replace_and_preset_overrides():
    before = PRESETS["sgc"].to_json()
    new_k = PRESETS["sgc"].k_pre + 1
    cfg = preset("sgc", k_pre=new_k)
    assert cfg.k_pre == new_k and cfg.ma == PRESETS["sgc"].ma
    assert PRESETS["sgc"].to_json() == before  # the registry entry is not mutated
    assert cfg.replace(k_trans=2).k_trans == 2
    with pytest.raises(ValueError, match="k_trans"):
        cfg.replace(k_trans=0)
    with pytest.raises(ValueError, match="unknown preset 'nope'"):
        preset("nope")


# ---------------------------------------------------------------------------- presets vs DESIGN.md
def test_presets_are_the_design_table_models():
    assert set(PRESET_NAMES) <= set(PRESETS)
    sgc, sign, s2gc, gbp = (preset(n) for n in ("sgc", "sign", "s2gc", "gbp"))
    assert (sgc.ga_pre, sgc.ma, sgc.k_trans, sgc.k_post) == ("aug_na", "none", 1, 0)
    assert sign.ma in ("concat", "sign") and sign.k_post == 0
    assert s2gc.ma == "mean" and s2gc.k_trans == 1 and s2gc.ga_pre in ("ppr", "aug_na")
    assert gbp.ma == "weighted" and gbp.k_trans >= 2 and gbp.ga_pre == "aug_na"
    appnp = preset("appnp_post")
    assert appnp.k_trans >= 2 and appnp.k_post > 0 and appnp.ga_post == "ppr"
    v1, v2, v3 = (preset(f"pasca_v{i}") for i in (1, 2, 3))
    assert (v1.ga_pre, v1.ga_pre_params.get("alpha"), v1.k_pre) == ("ppr", 0.1, 3)
    assert (v1.ma, v1.k_trans, v1.k_post) == ("weighted", 2, 0)
    assert (v2.ga_pre, v2.k_pre, v2.ma, v2.k_trans, v2.k_post) == ("aug_na", 6, "adaptive", 2, 0)
    assert (v3.ga_pre, v3.k_pre, v3.ma, v3.k_trans) == ("aug_na", 6, "adaptive", 3)
    assert (v3.ga_post, v3.ga_post_params.get("alpha"), v3.k_post) == ("ppr", 0.3, 4)


def expected_num_params(cfg: SGAPConfig, f: int, c: int) -> int:
    """Parameter count derived from the architecture definition, independently of the model."""
    h = cfg.k_pre + 1
    ma_params, ma_out = 0, f
    if cfg.ma == "concat":
        ma_out = h * f
    elif cfg.ma == "sign":
        hidden = cfg.ma_params.get("hidden", 64)
        ma_params, ma_out = h * (f * hidden + hidden), h * hidden
    elif cfg.ma == "adaptive":
        ma_params = f + 1
    elif cfg.ma == "weighted" and cfg.ma_params.get("learnable"):
        ma_params = h
    dims = [ma_out] + [cfg.hidden] * (cfg.k_trans - 1) + [c]
    return ma_params + sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_builds_a_working_model(name):
    f, c, n = 12, 4, 30
    cfg = preset(name)
    torch.manual_seed(0)
    model = SGAPModel(cfg, f, c)
    assert sum(p.numel() for p in model.parameters()) == expected_num_params(cfg, f, c)
    assert sum(isinstance(m, torch.nn.Linear) for m in model.mlp) == cfg.k_trans
    hops = torch.randn(n, cfg.k_pre + 1, f)
    model.eval()
    logits = model(hops)
    assert logits.shape == (n, c) and bool(torch.isfinite(logits).all())
    model.train()
    loss = torch.nn.functional.cross_entropy(model(hops), torch.arange(n) % c)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    # post-processing on a ring: a regular graph, so even D^-1/2 Ã D^-1/2 keeps row sums at 1
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    probs = model.postprocess(ring, logits)
    assert probs.shape == (n, c)
    torch.testing.assert_close(probs.sum(1), torch.ones(n))
    if cfg.k_post == 0:
        torch.testing.assert_close(probs, torch.softmax(logits, -1))


def test_from_preset_and_string_config():
    a = SGAPModel.from_preset("pasca_v2", in_dim=8, num_classes=3)
    b = SGAPModel("pasca_v2", 8, 3)
    assert a.config == b.config == preset("pasca_v2")
    c = SGAPModel.from_preset("pasca_v2", 8, 3, k_pre=2)
    assert c.config.k_pre == 2
    with pytest.raises(TypeError, match="config"):
        SGAPModel({"k_pre": 2}, 8, 3)
    with pytest.raises(ValueError, match="num_classes"):
        SGAPModel("sgc", 8, 0)


def test_sgc_model_is_a_linear_map_of_the_last_hop():
    torch.manual_seed(0)
    cfg = SGAPConfig(k_pre=2, ma="none", k_trans=1)
    model = SGAPModel(cfg, 6, 3).eval()
    hops = torch.randn(5, 3, 6)
    lin = model.mlp[0]
    expected = hops[:, -1] @ lin.weight.t() + lin.bias
    torch.testing.assert_close(model(hops), expected)


def test_two_layer_mlp_on_concat():
    torch.manual_seed(0)
    cfg = SGAPConfig(k_pre=1, ma="concat", k_trans=2, hidden=7, dropout=0.5)
    model = SGAPModel(cfg, 4, 3).eval()
    hops = torch.randn(5, 2, 4)
    l1, l2 = (m for m in model.mlp if isinstance(m, torch.nn.Linear))
    h = torch.relu(torch.cat([hops[:, 0], hops[:, 1]], 1) @ l1.weight.t() + l1.bias)
    torch.testing.assert_close(model(hops), h @ l2.weight.t() + l2.bias)


def test_forward_rejects_wrong_hop_shape():
    model = SGAPModel(SGAPConfig(k_pre=2), 6, 3)
    with pytest.raises(ValueError, match="hops"):
        model(torch.randn(4, 2, 6))
    with pytest.raises(ValueError, match="hops"):
        model(torch.randn(4, 3, 5))


def test_postprocess_matches_dense_ppr():
    n, c, k, alpha = 12, 3, 4, 0.3
    cfg = SGAPConfig(k_pre=0, k_post=k, ga_post="ppr", ga_post_params={"alpha": alpha})
    model = SGAPModel(cfg, 5, c)
    gen = np.random.default_rng(0)
    src, dst = gen.integers(0, n, 30), gen.integers(0, n, 30)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    a = np.zeros((n, n))
    a[np.r_[dst, src], np.r_[src, dst]] = 1.0  # undirected simple graph
    ei = torch.from_numpy(np.stack(np.nonzero(a.T))).long()  # rows of a.T: sources
    a_tilde = a + np.eye(n)
    d = a_tilde.sum(1)
    w = a_tilde / np.sqrt(np.outer(d, d))
    logits = torch.randn(n, c, dtype=torch.float64)
    p0 = torch.softmax(logits, -1).numpy()
    p = p0
    for _ in range(k):
        p = alpha * p0 + (1 - alpha) * w @ p
    np.testing.assert_allclose(model.postprocess(ei, logits).numpy(), p, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="logits"):
        model.postprocess(ei, logits[:-1], num_nodes=n)


def test_diverging_training_raises_naming_lr():
    """A step size far too large for the features' scale drives the weights to inf: the
    trainer stops with the cause instead of returning NaN predictions."""
    from sgap_plugins.core.trainer import run

    gen = torch.Generator().manual_seed(0)
    n = 40
    x = torch.rand(n, 8, generator=gen) * 1e30
    y = torch.arange(n) % 2
    ei = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    cfg = SGAPConfig(k_pre=1, k_trans=3, hidden=8, lr=1e30, weight_decay=0.0, epochs=20)
    mask = torch.ones(n, dtype=torch.bool)
    with pytest.raises(FloatingPointError, match=r"training diverged.*config\.lr=1e\+30"):
        run(ei, x, y, mask, mask, mask, cfg)


def test_non_finite_logits_raise_instead_of_nan_predictions():
    """Training is finite, but one unseen node's (finite) features overflow the logits: the
    trainer says so rather than returning NaN probabilities."""
    from sgap_plugins.core.trainer import run

    n = 30
    x = torch.rand(n, 16, generator=torch.Generator().manual_seed(0))
    x[-1] = 3e38  # finite, but a 2-layer MLP's sums over it overflow
    y = torch.arange(n) % 3
    ei = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    seen = torch.arange(n) < n - 1
    with pytest.raises(FloatingPointError, match="not finite for 1 of 30 nodes"):
        run(ei, x, y, seen, seen, ~seen, SGAPConfig(k_pre=0, k_trans=2, hidden=64, epochs=5))


# ---------------------------------------------------------------------------- label
def test_label():
    cfg = SGAPConfig(
        k_pre=6,
        ga_pre="aug_na",
        ma="adaptive",
        k_trans=3,
        k_post=4,
        ga_post="ppr",
        ga_post_params={"alpha": 0.3},
    )
    assert cfg.label() == "aug_na×6 → adaptive → MLP3 → ppr(0.3)×4"
    plain = SGAPConfig(k_pre=3, ga_pre="ppr", ga_pre_params={"alpha": 0.1}, ma="weighted")
    assert plain.label() == "ppr(0.1)×3 → weighted → MLP1"
    assert all(isinstance(preset(n).label(), str) for n in PRESET_NAMES)
