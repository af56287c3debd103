"""Graphs from disk: the streaming CSR build (``core.graph_store.build_csr``) and the graph
folder (``CSRGraph.save`` / ``CSRGraph.load``).

References: ``CSRGraph.from_edge_index`` (scipy's COO → CSR) and ``.symmetrize()`` (scipy's
``maximum(A, Aᵀ)``), and a brute-force edge count for the symmetrised multigraph.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from sgap_plugins import CSRGraph
from sgap_plugins.core import graph_store
from sgap_plugins.core.graph_store import build_csr
from sgap_plugins.core.memory import PeakAnonMemory


def assert_same_graph(got: CSRGraph, ref: CSRGraph) -> None:
    assert got.num_nodes == ref.num_nodes
    assert got.rowptr.dtype == torch.int64
    assert torch.equal(got.rowptr, ref.rowptr)
    assert got.col.dtype == ref.col.dtype
    assert torch.equal(got.col, ref.col)
    assert (got.weight is None) == (ref.weight is None)
    if ref.weight is not None:
        assert got.weight is not None and got.weight.dtype == torch.float32
        assert torch.equal(got.weight, ref.weight)


def random_edges(seed: int, num_nodes: int, num_edges: int, dtype: type) -> np.ndarray:
    """Edges among the first 80% of the nodes (the rest are isolated), drawn from a small
    pool so that many repeat, plus explicit self loops (some repeated)."""
    rng = np.random.default_rng(seed)
    active = int(num_nodes * 0.8)
    pool = rng.integers(0, active, (2, num_edges // 3))
    edges = pool[:, rng.integers(0, pool.shape[1], num_edges)]
    loops = np.repeat(rng.integers(0, active, 10), 2)
    edges = np.concatenate([edges, np.stack([loops, loops])], axis=1)
    return edges[:, rng.permutation(edges.shape[1])].astype(dtype)


def save_split(edges: np.ndarray, folder: Path, parts: int) -> list[Path]:
    """The edge list in ``parts`` files of uneven sizes, one of them empty."""
    cuts = np.sort(np.random.default_rng(1).integers(0, edges.shape[1], parts - 2))
    pieces = np.split(edges, [0, *cuts], axis=1)  # the first piece is empty
    paths = []
    for i, piece in enumerate(pieces):
        paths.append(folder / f"edges{i}.npy")
        np.save(paths[-1], piece)
    return paths


def reference(edges: np.ndarray, num_nodes: int | None, symmetrize: bool) -> CSRGraph:
    graph = CSRGraph.from_edge_index(torch.from_numpy(edges.astype(np.int64)), num_nodes)
    return graph.symmetrize() if symmetrize else graph


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("symmetrize", [False, True])
@pytest.mark.parametrize("chunk_edges", [1, 7, 1 << 20])
def test_build_matches_from_edge_index(tmp_path, dtype, symmetrize, chunk_edges):
    num_nodes = 60
    edges = random_edges(0, num_nodes, 500, dtype)
    files = save_split(edges, tmp_path, parts=4)
    got = build_csr(
        files, tmp_path / "g", num_nodes=num_nodes, symmetrize=symmetrize, chunk_edges=chunk_edges
    )
    ref = reference(edges, num_nodes, symmetrize)
    assert ref.weight is not None  # the edge list has duplicates: summed into weights
    assert_same_graph(got, ref)
    assert (tmp_path / "g" / "weight.npy").is_file()


@pytest.mark.parametrize("symmetrize", [False, True])
def test_build_drop_duplicates_is_the_unweighted_union(tmp_path, symmetrize):
    edges = random_edges(2, 50, 400, np.int64)
    np.save(tmp_path / "e.npy", edges)
    got = build_csr(
        tmp_path / "e.npy", tmp_path / "g", symmetrize=symmetrize, duplicates="drop", chunk_edges=5
    )
    ref = reference(np.unique(edges, axis=1), None, symmetrize)
    assert ref.weight is None
    assert_same_graph(got, ref)
    assert not (tmp_path / "g" / "weight.npy").exists()


def test_build_infers_num_nodes_and_stays_unweighted_without_duplicates(tmp_path):
    rng = np.random.default_rng(3)
    keys = rng.choice(40 * 40, 300, replace=False)
    edges = np.stack([keys % 40, keys // 40]).astype(np.int32)
    np.save(tmp_path / "e.npy", edges)
    got = build_csr(tmp_path / "e.npy", tmp_path / "g", chunk_edges=11)
    assert_same_graph(got, reference(edges, None, False))
    assert got.weight is None and got.num_nodes == int(edges.max()) + 1


def test_symmetrized_multigraph_weights_brute_force(tmp_path):
    """``max(A, Aᵀ)`` where ``A_vu`` counts the copies of ``u → v``, by a plain loop."""
    edges = random_edges(4, 30, 200, np.int64)
    np.save(tmp_path / "e.npy", edges)
    got = build_csr(tmp_path / "e.npy", tmp_path / "g", symmetrize=True, chunk_edges=3)
    count = Counter(zip(edges[1].tolist(), edges[0].tolist(), strict=True))  # (v, u)
    expect = {}
    for v, u in set(count) | {(u, v) for v, u in count}:
        expect[(v, u)] = max(count.get((v, u), 0), count.get((u, v), 0))
    rows = got.row_index().tolist()
    assert got.weight is not None
    found = dict(zip(zip(rows, got.col.tolist(), strict=True), got.weight.tolist(), strict=True))
    assert found == expect


def test_build_empty_graph(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((2, 0), dtype=np.int64))
    got = build_csr(tmp_path / "e.npy", tmp_path / "g", num_nodes=5, symmetrize=True)
    assert got.num_nodes == 5 and got.num_edges == 0 and got.weight is None
    assert got.rowptr.tolist() == [0] * 6


def test_build_writes_folder_format_and_removes_temporaries(tmp_path):
    edges = random_edges(5, 40, 300, np.int32)
    np.save(tmp_path / "e.npy", edges)
    out = tmp_path / "g"
    build_csr(tmp_path / "e.npy", out, symmetrize=True, chunk_edges=9)
    assert sorted(p.name for p in out.iterdir()) == [
        "col.npy",
        "graph.json",
        "rowptr.npy",
        "weight.npy",
    ]
    meta = json.loads((out / "graph.json").read_text())
    ref = reference(edges, None, True)
    assert meta["num_nodes"] == ref.num_nodes and meta["num_edges"] == ref.num_edges
    assert meta["weighted"] is True and meta["col_dtype"] == "int32"
    assert meta["symmetrize"] is True and meta["inputs"][0]["num_edges"] == edges.shape[1]
    # Plain .npy files that numpy reads without pickles.
    col = np.load(out / "col.npy", allow_pickle=False)
    assert np.array_equal(col, ref.col.numpy())


def test_build_progress_bars(tmp_path, capsys):
    np.save(tmp_path / "e.npy", random_edges(6, 20, 50, np.int64))
    build_csr(tmp_path / "e.npy", tmp_path / "g", progress=True)
    err = capsys.readouterr().err
    assert "count in-degrees" in err and "sort chunks" in err and "merge rows" in err


# --------------------------------------------------------------------------- bad input
def _bad_build(tmp_path: Path, edge_files, match: str, exc: type = ValueError, **kw) -> None:
    out = tmp_path / "out"
    with pytest.raises(exc, match=match):
        build_csr(edge_files, out, **kw)
    assert not out.exists()


def test_build_missing_file(tmp_path):
    _bad_build(
        tmp_path,
        tmp_path / "nope.npy",
        r"edge_files: .*nope\.npy does not exist.*np\.save",
        FileNotFoundError,
    )


def test_build_wrong_shapes(tmp_path):
    np.save(tmp_path / "e3.npy", np.zeros((10, 3), dtype=np.int64))
    _bad_build(tmp_path, tmp_path / "e3.npy", r"edge_files: .*shape \[10, 3\], expected \[2, E\]")
    np.save(tmp_path / "e2.npy", np.zeros((10, 2), dtype=np.int64))
    _bad_build(tmp_path, tmp_path / "e2.npy", r"\[E, 2\] list: save edge_index\.T")
    np.save(tmp_path / "e1.npy", np.zeros(10, dtype=np.int64))
    _bad_build(tmp_path, tmp_path / "e1.npy", r"expected \[2, E\]")


def test_build_float_ids(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((2, 4), dtype=np.float32))
    _bad_build(tmp_path, tmp_path / "f.npy", r"dtype float32.*astype\(np\.int64\)", TypeError)


def test_build_id_out_of_range(tmp_path):
    edges = np.array([[0, 1, 2], [1, 2, 9]])
    np.save(tmp_path / "e.npy", edges)
    _bad_build(
        tmp_path,
        tmp_path / "e.npy",
        r"node id 9 but num_nodes=5; pass num_nodes >= 10",
        num_nodes=5,
        chunk_edges=2,
    )
    np.save(tmp_path / "neg.npy", -edges)
    _bad_build(tmp_path, tmp_path / "neg.npy", r"negative node id")


def test_build_not_npy(tmp_path):
    np.savetxt(tmp_path / "edges.csv", np.zeros((2, 3)), delimiter=",")
    _bad_build(tmp_path, tmp_path / "edges.csv", r"not a \.npy file; convert .*np\.save")
    (tmp_path / "fake.npy").write_text("0 1\n1 2\n")
    _bad_build(tmp_path, tmp_path / "fake.npy", r"not a \.npy file")
    np.save(tmp_path / "obj.npy", np.array([[0, 1], [1, None]], dtype=object))
    _bad_build(tmp_path, tmp_path / "obj.npy", r"not a plain \.npy array")


def test_build_bad_arguments(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((2, 3), dtype=np.int64))
    _bad_build(tmp_path, tmp_path / "e.npy", r"duplicates must be one of", duplicates="max")
    _bad_build(tmp_path, tmp_path / "e.npy", r"chunk_edges must be >= 1", chunk_edges=0)
    _bad_build(tmp_path, [], r"edge_files must be a path", TypeError)


def test_failed_build_leaves_no_finished_folder(tmp_path, monkeypatch):
    np.save(tmp_path / "e.npy", random_edges(7, 30, 100, np.int64))
    out = tmp_path / "g"
    build_csr(tmp_path / "e.npy", out)
    assert (out / "graph.json").exists()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(graph_store, "_merge", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_csr(tmp_path / "e.npy", out, symmetrize=True)
    assert list(out.iterdir()) == []  # neither the old graph.json nor partial arrays or temps
    with pytest.raises(FileNotFoundError, match="not a finished graph folder"):
        CSRGraph.load(out)


def test_build_peak_memory_is_o_nodes_plus_chunk(tmp_path):
    """20M edges, 200k nodes, 256k-edge chunks: an [E] int32 array alone (76 MiB) would break
    the bound of ~38 MiB (32 bytes per node + 96 bytes per chunk edge + 8 MiB)."""
    num_nodes, num_edges, chunk = 200_000, 20_000_000, 1 << 18
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.integers(0, num_nodes, (2, num_edges), dtype=np.int32))
    bound = 32 * num_nodes + 96 * chunk + (8 << 20)
    assert bound < 4 * num_edges / 2
    with PeakAnonMemory() as mem:
        graph = build_csr(
            tmp_path / "e.npy", tmp_path / "g", num_nodes=num_nodes, chunk_edges=chunk
        )
    growth = mem.peak - mem.baseline
    print(f"peak anonymous growth {growth / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB")
    assert growth < bound, f"peak anonymous growth {growth / 2**20:.1f} MiB"
    assert graph.num_edges > 0.99 * num_edges  # (few duplicates among 4e10 pairs)
    del graph
    for path in tmp_path.rglob("*.npy"):
        path.unlink()


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_roundtrip(tmp_path, weighted, mmap):
    edges = torch.from_numpy(random_edges(8, 40, 200, np.int64))
    graph = CSRGraph.from_edge_index(edges, 45)
    if not weighted:
        graph = graph.with_weights(None)
    graph.save(tmp_path / "g")
    loaded = CSRGraph.load(tmp_path / "g", mmap=mmap)
    assert_same_graph(loaded, graph)
    # Writable tensors; with mmap the file stays as it was (copy-on-write).
    loaded.col[0] = 7
    again = CSRGraph.load(tmp_path / "g")
    assert torch.equal(again.col, graph.col)


def test_save_over_the_mapped_folder(tmp_path):
    graph = CSRGraph.from_edge_index(torch.from_numpy(random_edges(9, 30, 100, np.int64)), 30)
    graph.save(tmp_path / "g")
    mapped = CSRGraph.load(tmp_path / "g")
    sym = mapped.symmetrize()
    sym.with_weights(None).save(tmp_path / "g")  # replaces files the old graph maps
    assert_same_graph(CSRGraph.load(tmp_path / "g"), sym.with_weights(None))
    assert not (tmp_path / "g" / "weight.npy").exists()
    assert torch.equal(mapped.col, graph.col)  # the old mapping still reads the old file


def test_save_load_empty_graph(tmp_path):
    graph = CSRGraph.from_edge_index(torch.zeros(2, 0, dtype=torch.long), 3)
    graph.save(tmp_path / "g")
    assert_same_graph(CSRGraph.load(tmp_path / "g"), graph)


def _saved(tmp_path: Path) -> Path:
    graph = CSRGraph.from_edge_index(torch.from_numpy(random_edges(10, 20, 60, np.int64)), 20)
    return graph.save(tmp_path / "g")


def test_load_rejects_unfinished_or_foreign_folders(tmp_path):
    folder = _saved(tmp_path)
    meta = json.loads((folder / "graph.json").read_text())
    (folder / "graph.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match="format version 99.*rebuild"):
        CSRGraph.load(folder)
    (folder / "graph.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CSRGraph.load(folder)
    (folder / "graph.json").unlink()
    with pytest.raises(FileNotFoundError, match="graph.json does not exist.*build_csr"):
        CSRGraph.load(folder)


def test_load_rejects_inconsistent_arrays(tmp_path):
    folder = _saved(tmp_path)
    rowptr = np.load(folder / "rowptr.npy")
    np.save(folder / "rowptr.npy", rowptr[:-1])
    with pytest.raises(ValueError, match=r"rowptr\.npy holds int64 \[20\].*expects int64 \[21\]"):
        CSRGraph.load(folder)
    bad = rowptr.copy()
    bad[5] = bad[6] + 1
    np.save(folder / "rowptr.npy", bad)
    with pytest.raises(ValueError, match=r"rowptr\.npy decreases"):
        CSRGraph.load(folder)
    np.save(folder / "rowptr.npy", rowptr)
    col = np.load(folder / "col.npy")
    np.save(folder / "col.npy", col.astype(np.int64))
    with pytest.raises(ValueError, match=r"col\.npy holds int64.*expects int32"):
        CSRGraph.load(folder)
    np.save(folder / "col.npy", col)
    (folder / "weight.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"weight\.npy is missing"):
        CSRGraph.load(folder)


def test_sort_run_argsort_fallback_matches_packed_sort():
    """Graphs of 2**31+ nodes cannot pack (row, key) into one int64 and sort a run through an
    argsort instead; both must cut the run into the same row ranges with the same edges."""
    rng = np.random.default_rng(11)
    rows, keys = rng.integers(0, 50, 400), rng.integers(0, 50, 400)
    bounds = np.arange(51)  # one row per range: the local row is always 0
    runs = [graph_store._sort_run(rows, keys, bounds, bits) for bits in (6, 62)]
    for packed, offsets in runs:  # 62: bounds[-1].bit_length() + bits > 62, the fallback
        assert np.array_equal(offsets, np.searchsorted(np.sort(rows), bounds))
        for r in range(50):
            got = np.sort(packed[offsets[r] : offsets[r + 1]])
            assert np.array_equal(got, np.sort(keys[rows == r]))
