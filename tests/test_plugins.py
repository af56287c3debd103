"""The plugin system: hooks, entry points, isolation of broken plugins, self-checks, the
``sgap plugins`` command and the example plugin package installed with pip.

Nothing here touches the shared virtual environment: distributions are either laid out by
hand in ``tmp_path`` (a ``.dist-info`` with ``entry_points.txt`` is all ``importlib.metadata``
needs) or pip-installed into a throwaway venv whose ``site-packages`` is put on ``sys.path``
for the duration of a test, then uninstalled with pip.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

import sgap_plugins
from sgap_plugins import CSRGraph
from sgap_plugins.cli import main as cli_main
from sgap_plugins.core import builtins, plugins
from sgap_plugins.core import graph_aggregators as ga
from sgap_plugins.core import message_aggregators as ma
from sgap_plugins.core.plugins import PluginCheckError, PluginWarning

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "entry_points" / "sgap-plugin-example"
BROKEN_DIST = "sgap-broken-plugins"

# ---------------------------------------------------------------------- plugin sources
# One module per failure mode, plus a good plugin that must keep working next to them.
BROKEN_MODULES = {
    "import_error": "import sgap_no_such_module  # noqa: F401\n",
    "hook_raises": """
        from sgap_plugins import hookimpl

        @hookimpl
        def sgap_graph_aggregators():
            raise RuntimeError("boom in the hook")
    """,
    "wrong_types": """
        import torch
        from sgap_plugins import hookimpl

        @hookimpl
        def sgap_graph_aggregators():
            return "heat"

        @hookimpl
        def sgap_message_aggregators():
            return [torch.nn.Linear]

        @hookimpl
        def sgap_framework_adapters():
            return [object()]
    """,
    "duplicate": """
        from sgap_plugins import GraphAggregator, hookimpl

        class MyAugNA(GraphAggregator):
            name = "aug_na"

            def transition(self, graph):
                return graph

        @hookimpl
        def sgap_graph_aggregators():
            return [MyAugNA]
    """,
    "self_check": """
        import torch
        from sgap_plugins import GraphAggregator, MessageAggregator, hookimpl

        class NaNHops(GraphAggregator):
            name = "nan_hops"

            def transition(self, graph):
                return graph

            def combine(self, wm, m0, t):
                return wm / 0.0

        class WrongShape(MessageAggregator):
            name = "wrong_shape"

            def forward(self, hops):
                return hops.sum(-1)

        @hookimpl
        def sgap_graph_aggregators():
            return [NaNHops]

        @hookimpl
        def sgap_message_aggregators():
            return [WrongShape]
    """,
    "bad_signature": """
        from sgap_plugins import GraphAggregator, hookimpl

        class Unused(GraphAggregator):
            name = "unused"

            def transition(self, graph):
                return graph

        @hookimpl
        def sgap_message_aggregators(num_hops):
            return []

        @hookimpl
        def sgap_graph_aggregators():
            return [Unused]
    """,
    "typo": """
        from sgap_plugins import hookimpl

        @hookimpl
        def sgap_graph_aggregator():
            return []
    """,
    "good": """
        from sgap_plugins import hookimpl
        from sgap_plugins.core import AugNormAdj
        from sgap_plugins.core.message_aggregators import MeanHops

        class RandomWalk(AugNormAdj):
            name = "good_rw"

            def __init__(self):
                super().__init__(r=0.0)

        class SumHops(MeanHops):
            name = "good_sum"

            def forward(self, hops):
                return hops.sum(1)

        @hookimpl
        def sgap_graph_aggregators():
            return [RandomWalk]

        @hookimpl
        def sgap_message_aggregators():
            return [SumHops]
    """,
}

# (entry point, problem substring) for every warning the broken distribution must give.
EXPECTED_PROBLEMS = [
    ("import_error", "failed to import 'sgap_broken.import_error' (ModuleNotFoundError"),
    ("hook_raises", "raised RuntimeError in sgap_graph_aggregators() (boom in the hook)"),
    ("wrong_types", "returned str from sgap_graph_aggregators(), not a list"),
    ("wrong_types", "which is not a subclass of MessageAggregator"),
    ("wrong_types", "which is not a framework adapter"),
    ("duplicate", "registers graph aggregator 'aug_na' (sgap_broken.duplicate.MyAugNA), but"),
    ("self_check", "'nan_hops' (sgap_broken.self_check.NaNHops), which fails its self-check"),
    ("self_check", "'wrong_shape' (sgap_broken.self_check.WrongShape), which fails"),
    ("bad_signature", "is not a valid plugin (Plugin 'bad_signature' for hook"),
    ("typo", "implements sgap_graph_aggregator(), which is not an sgap_plugins hook"),
]


def write_dist(
    site: Path,
    dist: str,
    entry_points: dict[str, str],
    modules: dict[str, str],
    version: str = "0.1.0",
) -> None:
    """Lay out an installed distribution by hand: the modules and a ``.dist-info`` holding
    ``METADATA`` and ``entry_points.txt`` (what pip writes, minus ``RECORD``)."""
    for path, source in modules.items():
        file = site / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[sgap_plugins]\n{lines}")


def write_broken_source(root: Path) -> Path:
    """The broken distribution as a source tree that pip can build."""
    package = root / "sgap_broken"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, source in BROKEN_MODULES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    eps = "".join(f'{name} = "sgap_broken.{name}"\n' for name in BROKEN_MODULES)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{BROKEN_DIST}"
            version = "0.1.0"

            [tool.setuptools]
            packages = ["sgap_broken"]

            [project.entry-points.sgap_plugins]
            """
        )
        + eps
    )
    return root


@contextlib.contextmanager
def plugins_from(site: Path) -> Iterator[None]:
    """Make the distributions in ``site`` visible (as if installed) for the duration, with
    freshly loaded plugins; afterwards forget them and everything imported from there."""
    sys.path.insert(0, str(site))
    plugins.reload_plugins()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(site)):
                del sys.modules[name]
        plugins.reload_plugins()


def load_with_warnings() -> list[str]:
    """Reload the plugins and return the messages of the plugin warnings they give."""
    plugins.reload_plugins()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugins.registry()
    return [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


def tiny_graph() -> tuple[torch.Tensor, torch.Tensor]:
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    return edge_index, torch.arange(8.0).reshape(4, 2)


# ---------------------------------------------------------------------- built-ins and hooks
def test_builtins_are_registered_through_the_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "0")  # whatever else the env has installed
    pm = plugins.get_plugin_manager()
    assert pm.get_plugin("builtins") is builtins
    impls = {impl.plugin_name for impl in pm.hook.sgap_graph_aggregators.get_hookimpls()}
    assert "builtins" in impls
    # The registry is exactly what the hook implementations return: no second path.
    from_hooks = [c for result in pm.hook.sgap_graph_aggregators() for c in result]
    assert list(plugins.graph_aggregator_classes().values()) == from_hooks
    from_hooks = [c for result in pm.hook.sgap_message_aggregators() for c in result]
    assert list(plugins.message_aggregator_classes().values()) == from_hooks
    record = plugins.plugin_records()[0]
    assert (record.name, record.distribution, record.status) == (
        "builtins",
        "sgap-plugins",
        "loaded",
    )
    assert record.graph_aggregators == ["aug_na", "ppr", "triangle"]
    assert "adaptive" in record.message_aggregators


def test_framework_adapters_come_from_the_own_entry_points() -> None:
    names = [a.name for a in plugins.framework_adapters()]
    records = {r.name: r for r in plugins.plugin_records()}
    for framework in ("pyg", "dgl"):
        assert records[framework].distribution == "sgap-plugins"
        installed = importlib.util.find_spec("torch_geometric" if framework == "pyg" else framework)
        assert (framework in names) == (installed is not None)
        # DESIGN.md: an adapter whose framework is not installed is simply absent
        assert records[framework].status == ("loaded" if installed else "absent")
        assert ("is not installed" in records[framework].note) == (installed is None)


def test_unknown_names_list_the_registered_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV_VAR, "0")
    with pytest.raises(ValueError, match=r"unknown graph aggregator 'heat'.*sgap plugins"):
        plugins.resolve_graph_aggregator("heat")
    with pytest.raises(ValueError, match=r"unknown message aggregator 'attention'.*'adaptive'"):
        plugins.message_aggregator_class("attention")


# ---------------------------------------------------------------------- self-checks
@pytest.mark.parametrize("cls", [ga.AugNormAdj, ga.PersonalizedPageRank, ga.TriangleMotif])
def test_builtin_graph_aggregators_pass_the_self_check(cls: type) -> None:
    plugins.check_graph_aggregator(cls)


class _NeedsParam(ga.GraphAggregator):
    name = "needs_param"

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha


class _NotCSR(ga.AugNormAdj):
    name = "not_csr"

    def transition(self, graph):
        return graph.to_scipy()


class _Shrinks(ga.AugNormAdj):
    name = "shrinks"

    def combine(self, wm, m0, t):
        return wm[:, :1]


class _TouchesM0(ga.AugNormAdj):
    name = "touches_m0"

    def combine(self, wm, m0, t):
        return m0.mul_(2.0)


class _InfOnWeighted(ga.AugNormAdj):
    name = "inf_on_weighted"

    def transition(self, graph):
        w = super().transition(graph)
        if graph.weight is None:
            return w
        return CSRGraph(w.rowptr, w.col, torch.full_like(w.weight, float("inf")), w.num_nodes)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_NeedsParam, r"_NeedsParam\(\) \(every parameter needs a default\) raised TypeError"),
        (_NotCSR, r"returned a csr_matrix; expected a CSRGraph of 5 nodes"),
        (_Shrinks, r"combine\(..., t=1\) returned a torch.float32 tensor of shape \[5, 1\]"),
        (_TouchesM0, r"modified the hop-0 message m0 in place"),
        (_InfOnWeighted, r"NaN or inf weights \(weighted graph\)"),
    ],
)
def test_graph_self_check_names_the_problem(cls: type, message: str) -> None:
    with pytest.raises(PluginCheckError, match=message):
        plugins.check_graph_aggregator(cls)


class _NoSingleHop(ma.MessageAggregator):
    name = "no_single_hop"

    def __init__(self, num_hops: int, in_dim: int) -> None:
        super().__init__(num_hops, in_dim)
        self.pair = torch.nn.Linear(2 * in_dim, in_dim)

    def forward(self, hops):
        return self.pair(hops[:, -2:].flatten(1))


class _BadOutDim(ma.ConcatHops):
    name = "bad_out_dim"

    def __init__(self, num_hops: int, in_dim: int) -> None:
        super().__init__(num_hops, in_dim)
        self.out_dim = in_dim  # forgot the concatenation


class _NaNOut(ma.MeanHops):
    name = "nan_out"

    def forward(self, hops):
        return hops.mean(1).log()


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_NoSingleHop, r"forward\(\) of hops \[2, 1, 4\] raised RuntimeError"),
        (_BadOutDim, r"shape \[2, 12\]; expected .* \[2, out_dim=4\]"),
        (_NaNOut, r"forward\(\) of hops \[2, 1, 4\] gives NaN or inf"),
    ],
)
def test_message_self_check_names_the_problem(cls: type, message: str) -> None:
    with pytest.raises(PluginCheckError, match=message):
        plugins.check_message_aggregator(cls)


def test_self_checks_leave_random_state_and_threads_alone() -> None:
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for cls in plugins.message_aggregator_classes().values():
        plugins.check_message_aggregator(cls)
    plugins.check_graph_aggregator(ga.TriangleMotif)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


# ---------------------------------------------------------------------- hand-laid-out plugins
def broken_entry_points() -> dict[str, str]:
    return {name: f"sgap_broken.{name}" for name in BROKEN_MODULES}


def broken_layout() -> dict[str, str]:
    files = {f"sgap_broken/{name}.py": src for name, src in BROKEN_MODULES.items()}
    files["sgap_broken/__init__.py"] = ""
    return files


def assert_broken_reported(messages: list[str], version: str = "0.1.0") -> None:
    """Each failure mode gives one warning naming the plugin, its distribution and the
    problem; the good plugin next to them and the built-ins keep working."""
    for ep, problem in EXPECTED_PROBLEMS:
        prefix = f"sgap_plugins: plugin {ep!r} (distribution {BROKEN_DIST!r} {version}) "
        hits = [m for m in messages if m.startswith(prefix) and problem in m]
        assert len(hits) == 1, (ep, problem, messages)
    assert len(messages) == len(EXPECTED_PROBLEMS), messages
    graph_names = plugins.graph_aggregator_classes()
    assert {"aug_na", "ppr", "triangle", "good_rw"} <= set(graph_names)
    assert graph_names["aug_na"] is ga.AugNormAdj
    assert "nan_hops" not in graph_names and "unused" not in graph_names
    assert {"good_sum", "adaptive"} <= set(plugins.message_aggregator_classes())
    assert "wrong_shape" not in plugins.message_aggregator_classes()
    edge_index, x = tiny_graph()
    for name in ("aug_na", "ppr", "good_rw"):
        assert torch.isfinite(sgap_plugins.propagate(edge_index, x, 3, name)).all()
    records = {r.name: r for r in plugins.plugin_records()}
    assert records["import_error"].status == "failed"
    assert records["good"].graph_aggregators == ["good_rw"]
    assert records["wrong_types"].status == "loaded" and len(records["wrong_types"].problems) == 3


def test_each_broken_plugin_warns_once_and_the_rest_keeps_working(tmp_path: Path) -> None:
    write_dist(tmp_path, BROKEN_DIST, broken_entry_points(), broken_layout())
    with plugins_from(tmp_path):
        assert_broken_reported(load_with_warnings())
        # Looking aggregators up again reports nothing new.
        with warnings.catch_warnings():
            warnings.simplefilter("error", PluginWarning)
            plugins.graph_aggregator_classes()
    assert "good_rw" not in plugins.graph_aggregator_classes()


def test_sgap_plugins_env_selects_external_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dist(tmp_path, BROKEN_DIST, broken_entry_points(), broken_layout())
    with plugins_from(tmp_path):
        monkeypatch.setenv(plugins.ENV_VAR, "0")
        assert load_with_warnings() == []
        records = {r.name: r for r in plugins.plugin_records()}
        assert records["good"].status == records["import_error"].status == "disabled"
        assert records["pyg"].status == "loaded"  # sgap-plugins' own adapters always load
        assert "good_rw" not in plugins.graph_aggregator_classes()

        monkeypatch.setenv(plugins.ENV_VAR, "good, nonexistent")
        messages = load_with_warnings()
        assert messages == [
            "sgap_plugins: SGAP_PLUGINS names 'nonexistent', but no installed distribution "
            "has an entry point of that name in the 'sgap_plugins' group"
        ]
        assert "good_rw" in plugins.graph_aggregator_classes()
        assert plugins.registry().record("typo").status == "disabled"


def test_entry_point_name_taken_by_another_distribution(tmp_path: Path) -> None:
    good = {"good_a/__init__.py": BROKEN_MODULES["good"]}
    write_dist(tmp_path, "sgap-good-a", {"good": "good_a"}, good)
    twin = {"good_b/__init__.py": BROKEN_MODULES["good"].replace("good_", "twin_")}
    write_dist(tmp_path, "sgap-good-b", {"good": "good_b", "builtins": "good_b"}, twin)
    with plugins_from(tmp_path):
        messages = load_with_warnings()
        assert len(messages) == 2, messages
        assert any(
            "plugin 'builtins' (distribution 'sgap-good-b' 0.1.0) uses the entry-point name "
            "'builtins', which plugin 'builtins' (distribution 'sgap-plugins'" in m
            for m in messages
        )
        # Which of the two keeps 'good' depends on directory order, as for pip installs.
        assert any(
            "uses the entry-point name 'good', which plugin 'good' (distribution 'sgap-good-" in m
            for m in messages
        )
        assert len({"good_rw", "twin_rw"} & set(plugins.graph_aggregator_classes())) == 1


def test_plugin_looking_up_the_registry_at_import_fails_cleanly(tmp_path: Path) -> None:
    source = """
        from sgap_plugins.core.plugins import graph_aggregator_classes

        CLASSES = graph_aggregator_classes()
    """
    write_dist(tmp_path, "sgap-eager", {"eager": "sgap_eager"}, {"sgap_eager.py": source})
    with plugins_from(tmp_path):
        (message,) = load_with_warnings()
        assert "plugin 'eager' (distribution 'sgap-eager' 0.1.0) failed to import" in message
        assert "RuntimeError: a plugin looked up the sgap_plugins registry" in message
        assert "aug_na" in plugins.graph_aggregator_classes()


TANH_PLUGIN = """
    import torch
    from sgap_plugins import MessageAggregator, hookimpl

    class TanhProjection(MessageAggregator):
        \"\"\"h_v = tanh(W mean_i(m_v^i) + b): a projection with its own output activation.\"\"\"

        name = "tanh_proj"

        def __init__(self, num_hops, in_dim, width=5):
            super().__init__(num_hops, in_dim)
            self.proj = torch.nn.Linear(in_dim, width)
            self.out_dim = width

        def reset_parameters(self):
            self.proj.reset_parameters()

        def forward(self, hops):
            return torch.tanh(self.proj(hops.mean(1)))

    @hookimpl
    def sgap_message_aggregators():
        return [TanhProjection]
"""


def test_plugin_message_aggregator_applies_its_own_output_activation(tmp_path: Path) -> None:
    """As SIGN's ReLU belongs to ``sign``, a plugin aggregator's activation belongs to it: the
    model is exactly MLP(aggregator(hops)), with nothing added for any aggregator name."""
    from sgap_plugins import SGAPConfig, SGAPModel

    write_dist(tmp_path, "sgap-tanh", {"tanh": "sgap_tanh"}, {"sgap_tanh.py": TANH_PLUGIN})
    hops = torch.randn(9, 3, 4, generator=torch.Generator().manual_seed(0))
    with plugins_from(tmp_path):
        assert load_with_warnings() == []
        cfg = SGAPConfig(k_pre=2, ma="tanh_proj", ma_params={"width": 5}, k_trans=2, hidden=6)
        model = SGAPModel(cfg, 4, 3).eval()
        proj = model.aggregator.proj
        l1, l2 = (m for m in model.mlp if isinstance(m, torch.nn.Linear))
        h = torch.tanh(hops.mean(1) @ proj.weight.t() + proj.bias)
        expected = torch.relu(h @ l1.weight.t() + l1.bias) @ l2.weight.t() + l2.bias
        torch.testing.assert_close(model(hops), expected)
    sign = SGAPModel(SGAPConfig(k_pre=2, ma="sign", ma_params={"hidden": 3}), 4, 2).eval()
    wt, bias = sign.aggregator.weight, sign.aggregator.bias
    inception = torch.cat([torch.relu(hops[:, i] @ wt[i] + bias[i]) for i in range(3)], 1)
    lin = sign.mlp[0]
    torch.testing.assert_close(sign(hops), inception @ lin.weight.t() + lin.bias)


# ---------------------------------------------------------------------- sgap plugins
def test_cli_lists_plugins_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_dist(tmp_path, BROKEN_DIST, broken_entry_points(), broken_layout())
    with plugins_from(tmp_path), warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)  # the command lists, it does not warn
        assert cli_main(["plugins", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        plugins.reload_plugins()
        assert cli_main(["plugins"]) == 0
        text = capsys.readouterr().out
    records = {r["name"]: r for r in report["plugins"]}
    assert records["good"] == {
        "name": "good",
        "distribution": BROKEN_DIST,
        "version": "0.1.0",
        "module": "sgap_broken.good",
        "status": "loaded",
        "graph_aggregators": ["good_rw"],
        "message_aggregators": ["good_sum"],
        "framework_adapters": [],
        "problems": [],
        "note": "",
    }
    assert records["import_error"]["status"] == "failed"
    assert "ModuleNotFoundError" in records["import_error"]["problems"][0]
    assert report["graph_aggregators"]["good_rw"] == "sgap_broken.good.RandomWalk"
    assert report["message_aggregators"]["adaptive"].endswith("AdaptiveHops")
    assert "good  [loaded]  sgap-broken-plugins 0.1.0  (sgap_broken.good)" in text
    assert "  graph aggregators: good_rw" in text
    assert "  problem: raised RuntimeError in sgap_graph_aggregators() (boom in the hook)" in text


# ---------------------------------------------------------------------- pip-installed packages
def _pip_build_args() -> list[str]:
    """Build without isolation where the running env can build wheels (setuptools ≥ 70.1
    ships ``bdist_wheel``; older ones need the ``wheel`` package); otherwise let pip make an
    isolated build env from its configured (local) index."""
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        return ["--no-build-isolation", "--no-index"]
    return []


def _pip(*args: str, python: str = sys.executable) -> None:
    cmd = [sys.executable, "-m", "pip", "--python", python, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of the example plugin and of the broken distribution, built once (from copies,
    so that the build leaves nothing in the repository)."""
    root = tmp_path_factory.mktemp("plugin_wheels")
    example = root / "src" / "example"
    shutil.copytree(
        EXAMPLE, example, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    broken = write_broken_source(root / "src" / "broken")
    out = root / "wheels"
    _pip("wheel", "--no-deps", "-q", "-w", str(out), *_pip_build_args(), str(example), str(broken))
    return {
        "example": next(out.glob("sgap_plugin_example-*.whl")),
        "broken": next(out.glob("sgap_broken_plugins-*.whl")),
    }


@pytest.fixture
def venv(tmp_path: Path) -> tuple[str, Path]:
    """A throwaway venv (no pip of its own; the running pip installs into it with
    ``--python``): its interpreter and its ``site-packages``."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    python = str(tmp_path / "venv" / "bin" / "python")
    site = tmp_path / "venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return python, site / "site-packages"


def sgap_plugins_json(site: Path) -> dict:
    """``sgap plugins --json`` in a fresh interpreter that sees ``site``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    env.pop(plugins.ENV_VAR, None)
    code = "from sgap_plugins.cli import main; raise SystemExit(main(['plugins', '--json']))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_broken_package_installed_with_pip(wheels: dict[str, Path], venv: tuple[str, Path]) -> None:
    python, site = venv
    _pip("install", "-q", "--no-index", "--no-deps", str(wheels["broken"]), python=python)
    with plugins_from(site):
        assert_broken_reported(load_with_warnings())
        _pip("uninstall", "-y", "-q", BROKEN_DIST, python=python)
        assert load_with_warnings() == []
        assert "good_rw" not in plugins.graph_aggregator_classes()


def test_example_plugin_installed_with_pip_end_to_end(
    wheels: dict[str, Path], venv: tuple[str, Path]
) -> None:
    python, site = venv
    _pip("install", "-q", "--no-index", "--no-deps", str(wheels["example"]), python=python)
    assert (site / "sgap_plugin_example").is_dir()
    with plugins_from(site):
        assert load_with_warnings() == []
        from sgap_plugin_example import HeatKernel, HopAttention

        assert plugins.graph_aggregator_classes()["heat"] is HeatKernel
        assert plugins.message_aggregator_classes()["attention"] is HopAttention
        record = plugins.registry().record("example")
        assert (record.distribution, record.version) == ("sgap-plugin-example", "0.1.0")
        check_example_everywhere()

        # A fresh process loads it too (its first registry look-up comes after
        # `import sgap_plugins`, which consults no registry, so the plugin's
        # `from sgap_plugins import ...` works).
        report = sgap_plugins_json(site)
        example = next(r for r in report["plugins"] if r["name"] == "example")
        assert example["graph_aggregators"] == ["heat"]
        assert example["message_aggregators"] == ["attention"]

        # Uninstalled, it disappears on reload, although its modules are still imported here.
        _pip("uninstall", "-y", "-q", "sgap-plugin-example", python=python)
        assert not (site / "sgap_plugin_example").exists()
        assert "sgap_plugin_example" in sys.modules
        plugins.reload_plugins()
        assert "heat" not in plugins.graph_aggregator_classes()
        assert "attention" not in plugins.message_aggregator_classes()
        with pytest.raises(ValueError, match="unknown graph aggregator 'heat'"):
            sgap_plugins.propagate(*tiny_graph(), 2, "heat")


def check_example_everywhere() -> None:
    """``heat`` and ``attention`` by name in propagate, the PyG transform, the DGL adapter and
    modules, the model, the trainer and the search space."""
    from sgap_plugin_example import HeatKernel

    gen = torch.Generator().manual_seed(0)
    n, f, k, tau = 30, 4, 25, 1.5
    edge_index = torch.randint(0, n, (2, 80), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.unique(torch.cat([edge_index, edge_index.flip(0)], 1), dim=1)
    x = torch.randn(n, f, generator=gen, dtype=torch.float64)

    hops = sgap_plugins.propagate(edge_index, x, k, "heat", tau=tau)
    assert hops.shape == (k + 1, n, f)
    # e^{-τ} Σ hops is the heat kernel exp(-τ(I - Â)) X; Â written out independently.
    src, dst = edge_index.numpy()
    adj = scipy.sparse.coo_matrix((np.ones(src.size), (dst, src)), shape=(n, n))
    adj = adj.tocsr()
    adj.setdiag(1.0)
    d = np.asarray(adj.sum(1)).ravel() ** -0.5
    a_hat = scipy.sparse.diags(d) @ adj @ scipy.sparse.diags(d)
    expected = scipy.sparse.linalg.expm_multiply(
        -tau * (scipy.sparse.identity(n) - a_hat), x.numpy()
    )
    heat = HeatKernel(tau=tau)
    np.testing.assert_allclose(heat.diffuse(hops).numpy(), expected, rtol=1e-5, atol=1e-6)

    # PyG transform
    from torch_geometric.data import Data

    from sgap_plugins.pyg import SGAPPrecompute

    data = SGAPPrecompute(k=3, aggregator="heat", tau=tau)(Data(x=x, edge_index=edge_index))
    for i in (1, 2, 3):
        torch.testing.assert_close(data[f"x{i}"], hops[i])

    # DGL: the adapter behind propagate, the transform and the model
    if importlib.util.find_spec("dgl") is not None:
        import dgl

        from sgap_plugins.dgl import SGAPModel as DGLSGAPModel
        from sgap_plugins.dgl import SGAPPrecompute as DGLPrecompute

        g = dgl.graph((edge_index[0], edge_index[1]), num_nodes=n)
        torch.testing.assert_close(sgap_plugins.propagate(g, x, k, "heat", tau=tau), hops)
        g.ndata["feat"] = x
        g = DGLPrecompute(3, aggregator="heat", tau=tau, hops_feat_name="out_feat_hops")(g)
        torch.testing.assert_close(g.ndata["out_feat_hops"], hops[:4].transpose(0, 1))
        config = sgap_plugins.SGAPConfig(
            k_pre=3,
            ga_pre="heat",
            ga_pre_params={"tau": tau},
            ma="attention",
            k_post=2,
            ga_post="heat",
            ga_post_params={},
        )
        model = DGLSGAPModel(config, f, 3)
        logits = model(g, x.float(), torch.arange(5))
        assert logits.shape == (5, 3) and torch.isfinite(logits).all()

    # The core model and trainer with both plugin aggregators chosen by name
    labels = torch.randint(0, 3, (n,), generator=gen)
    idx = torch.randperm(n, generator=gen)
    config = sgap_plugins.SGAPConfig(
        k_pre=3,
        ga_pre="heat",
        ma="attention",
        ma_params={"hidden": 8},
        k_post=2,
        ga_post="heat",
        ga_post_params={},
        epochs=5,
        patience=5,
    )
    _, result = sgap_plugins.run(
        edge_index, x.float(), labels, idx[:10], idx[10:20], idx[20:], config
    )
    assert 0.0 <= result.test_acc <= 1.0

    # The search space
    space_module = pytest.importorskip("sgap_plugins.core.search.space")
    space = space_module.DesignSpace.paper(
        extra_graph_aggregators=[("heat", {"tau": tau})], extra_message_aggregators=["attention"]
    )
    assert space.size() == 11 * 6 * 7 * 10 * 11 * 6
    point = {
        "k_pre": 3,
        "ga_pre": "heat(1.5)",
        "ma": "attention",
        "k_trans": 2,
        "k_post": 1,
        "ga_post": "heat(1.5)",
    }
    config = space.to_config(point)
    assert (config.ga_pre, config.ga_pre_params, config.ma) == ("heat", {"tau": tau}, "attention")
    assert space.to_point(config) == point
