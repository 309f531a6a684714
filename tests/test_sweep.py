"""Sweeps (simulator/sweep.py, simulator/executors.py): expansion and keys, one-line errors, the resumable store,
a killed driver and a killed Dask worker, and the executors giving identical tables."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from simulator import ConfigError, load_arch
from simulator.executors import DaskExecutor, LocalExecutor, SerialExecutor
from simulator.results import package_version
from simulator.sweep import (
    PointStore,
    SweepError,
    expand,
    pruned_workload_path,
    read_point_file,
    run_point,
    run_sweep,
)
from workloads import Workload
from workloads.synthetic import build

from .conftest import REPO

SMALL = {"synthetic": "alexnet", "max_layers": 2}
SWEEP = {
    "designs": ["dadiannao",
                {"preset": "pragmatic", "grid": {"first_stage_bits": [0, 2], "run_ahead": [0, 1]}},
                {"preset": "stripes", "zip": {"rows": [8, 16], "columns": [8, 16]}, "knobs": {"tiles": 4}}],
    "workloads": [SMALL],
    "pruning": ["none", {"method": "magnitude", "sparsity": [0.5, 0.8]}],
}


def test_grid_and_zip_expand_every_combination_once():
    points = expand(SWEEP)
    assert len(points) == (1 + 4 + 2) * 1 * 3
    pragmatic = {(p.arch["first_stage_bits"], p.arch["run_ahead"]) for p in points if p.arch["design"] == "pragmatic"}
    assert pragmatic == {(0, 0), (0, 1), (2, 0), (2, 1)}
    stripes = {(p.arch["rows"], p.arch["columns"], p.arch["tiles"]) for p in points if p.arch["design"] == "stripes"}
    assert stripes == {(8, 8, 4), (16, 16, 4)}  # zipped side by side, not crossed
    assert len({p.key for p in points}) == len(points)


def test_key_is_the_hash_of_the_full_configuration():
    point = expand({"designs": [{"preset": "stripes", "knobs": {"rows": 8}}], "workloads": [SMALL]})[0]
    arch = load_arch("stripes", rows=8).to_dict()
    digest = build("alexnet", max_layers=2).digest()
    data = {"arch": arch, "workload": SMALL, "pruning": {}, "outputs": ["cycles", "energy"], "accuracy_images": 0,
            "digest": digest, "version": package_version()}
    assert point.key == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]
    other = expand({"designs": [{"preset": "stripes", "knobs": {"rows": 4}}], "workloads": [SMALL]})[0]
    assert other.key != point.key


def test_keys_are_the_same_in_another_process(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    code = ("import json, sys; from simulator.sweep import expand; "
            "print(json.dumps([p.key for p in expand(sys.argv[1])]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO)
    assert json.loads(out.stdout) == [p.key for p in expand(path)]


@pytest.mark.parametrize("change, words", [
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"designs": [{"preset": "pragmatic", "grid": {"first_stage_bits": [1, 9]}}]},
     "designs[0].grid.first_stage_bits: pragmatic: first_stage_bits (9)"),
    ({"designs": [{"preset": "stripes", "zip": {"rows": [8, 16], "columns": [8]}}]},
     "designs[0].zip: zipped lists must have one length"),
    ({"designs": ["no_such_preset"]}, "designs[0]"),
    ({"designs": [{"preset": "stripes", "grid": {"rows": []}}]}, "designs[0].grid.rows: the list of values is empty"),
    ({"workloads": ["no_such_network"]}, "workloads[0]"),
    ({"workloads": [{"synthetic": "alexnet", "file": "x.npz"}]}, "workloads[0]: must have exactly one of"),
    ({"pruning": [{"method": "shears"}]}, "pruning[0].method: unknown pruning method 'shears'"),
    ({"pruning": [{"method": "magnitude", "sparsity": [1.5]}]}, "pruning[0]: magnitude: sparsity (1.5)"),
    ({"outputs": ["cycles", "joy"]}, "outputs (['cycles', 'joy'])"),
    ({"outputs": ["accuracy"]}, "accuracy needs a built-in real workload"),
])
def test_bad_sweep_files_give_one_line_errors_naming_the_field(tmp_path, change, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, **change}))
    with pytest.raises(SweepError) as err:
        expand(path)
    message = str(err.value)
    assert words in message and "\n" not in message and str(path) in message


class CountingExecutor(SerialExecutor):
    """Serial, noting the points it runs (``ran``) and the pruned workloads it computes (``pruned``)."""

    def __init__(self):
        super().__init__()
        self.ran, self.pruned = [], []

    def map_points(self, points, store_root, task=run_point):
        (self.ran if task is run_point else self.pruned).extend(p.key for p in points)
        yield from super().map_points(points, store_root, task)


def test_store_resumes_and_records_failures_without_stopping(tmp_path):
    wide = {"designs": ["dadiannao", "dadiannao_int8"], "workloads": [SMALL]}  # 16-bit layers: int8 refuses them
    points = expand(wide)
    store = PointStore(tmp_path / "store")
    first = CountingExecutor()
    assert run_sweep(points, store, first) == {"done": 1, "failed": 1, "pending": 0}
    assert "exceeds the PE width" in store.errors()["error"].iloc[0]
    again = CountingExecutor()
    run_sweep(points, store, again)
    assert again.ran == [points[1].key]  # only the failed point is tried again; the finished one is not recomputed
    table = store.table()
    assert set(table["key"]) == {points[0].key} and len(table) == 2  # one row per layer of the finished point
    ref = load_arch("dadiannao")
    from simulator import simulate

    direct = simulate(ref, build("alexnet", max_layers=2)).layers
    np.testing.assert_array_equal(table["cycles"], direct["cycles"])
    groups = table[["energy_compute_pj", "energy_buffers_pj", "energy_offchip_pj"]].sum(axis=1)
    np.testing.assert_allclose(groups, direct["energy_pj"], rtol=1e-12)  # the part groups add up to the energy


def test_points_are_arrow_files_and_parquet_points_of_earlier_stores_still_count(tmp_path):
    import pyarrow.parquet as pq

    points = expand({"designs": ["stripes", "dadiannao"], "workloads": [SMALL]})
    store = PointStore(tmp_path / "store")
    run_sweep(points[:1], store, SerialExecutor())
    arrow = store.point_file(points[0].key)
    assert arrow.suffix == ".arrow" and len(pd.read_feather(arrow)) == 2  # readable without this package
    # an earlier version's Parquet point (same table and provenance) is done, read, and not recomputed
    table = read_point_file(arrow)
    pq.write_table(table, store.points / f"{points[1].key}.parquet")
    assert store.done(points[1].key) and store.record(points[1].key) == store.record(points[0].key)
    again = CountingExecutor()
    assert run_sweep(points, store, again)["done"] == 2 and again.ran == []
    assert len(store.table()) == 4


def _write(tmp_path, sweep) -> str:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return str(path)


def test_a_killed_driver_loses_nothing_finished_and_a_rerun_does_only_the_rest(tmp_path):
    sweep = {"designs": [{"preset": "stripes", "grid": {"rows": [1, 2, 4, 8, 16, 32]}}],
             "workloads": [{"synthetic": "alexnet", "max_layers": 4}]}
    path, out = _write(tmp_path, sweep), tmp_path / "store"
    points = expand(path)
    cmd = [sys.executable, "-m", "simulator", "sweep", path, "--out", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = PointStore(out)
    deadline = time.monotonic() + 120
    while not store.done_keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # at a random moment after the first point
    proc.wait()
    done = store.done_keys()
    assert 1 <= len(done) <= len(points)
    for key in done:  # whatever was recorded is complete and readable
        assert len(store.table([p for p in points if p.key == key])) == 4
    (out / "points" / "0123abcd.parquetx1y2.tmp").write_bytes(b"PAR1 half")  # as a writer killed mid-file leaves
    rerun = CountingExecutor()
    assert run_sweep(points, store, rerun)["done"] == len(points)
    assert sorted(rerun.ran) == sorted(p.key for p in points if p.key not in done)
    assert not list(out.rglob("*.tmp"))


def test_local_and_dask_executors_give_identical_tables_and_survive_a_killed_worker(tmp_path):
    sweep = {"designs": [{"preset": "pragmatic", "grid": {"first_stage_bits": [0, 1, 2, 3], "rows": [4, 8, 16]}}],
             "workloads": [{"synthetic": "alexnet", "max_layers": 3}]}
    points = expand(sweep)
    local = PointStore(tmp_path / "local")
    assert run_sweep(points, local, LocalExecutor(2))["done"] == len(points)
    dask_store = PointStore(tmp_path / "dask")
    executor = DaskExecutor(local_workers=2)
    killed = []

    def kill_a_worker(finished, total, figures):
        if finished == 1 and not killed:  # a point is done and the others are queued or running: kill a worker
            pids = executor.client.run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    assert run_sweep(points, dask_store, executor, progress=kill_a_worker) == {"done": len(points), "failed": 0,
                                                                               "pending": 0}
    assert killed
    a, b = local.table(), dask_store.table()
    assert len(a) == 3 * len(points) and a.equals(b)


def test_pruned_workloads_are_computed_once_per_store_and_reused_on_rerun(tmp_path, monkeypatch):
    import pruning
    from simulator import sweep as sweep_module

    sweep = {"designs": [{"preset": "stripes", "grid": {"rows": [4, 8, 16]}}], "workloads": [SMALL],
             "pruning": ["none", {"method": "magnitude", "sparsity": [0.5, 0.8]}]}
    points = expand(sweep)
    store = PointStore(tmp_path / "store")
    first = CountingExecutor()
    assert run_sweep(points, store, first)["done"] == len(points) == 9
    assert len(first.pruned) == 2  # one per distinct (workload, step), before the points; none for "none"
    saved = {pruned_workload_path(store.root, p) for p in points if p.pruning}
    assert len(saved) == 2 and all(path.is_file() for path in saved)
    for p in points:  # the saved file is the pruned workload the point simulated
        if p.pruning:
            direct = pruning.prune(build("alexnet", max_layers=2), "magnitude",
                                   sparsity=p.pruning["sparsity"]).workload
            assert Workload.load(pruned_workload_path(store.root, p)).digest() == direct.digest()

    # another design on the same store, in a "new process" (caches cleared) where pruning would fail: the saved
    # workloads are read back, nothing is pruned again
    sweep_module._point_workload.cache_clear()
    monkeypatch.setattr(pruning, "prune", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pruned again")))
    more = expand({**sweep, "designs": ["dadiannao"]})
    again = CountingExecutor()
    assert run_sweep(more, store, again) == {"done": 3, "failed": 0, "pending": 0}
    assert again.pruned == [] and len(again.ran) == 3


def test_local_executor_prunes_in_its_workers_into_one_file(tmp_path):
    sweep = {"designs": [{"preset": "stripes", "grid": {"rows": [2, 4, 8, 16]}}], "workloads": [SMALL],
             "pruning": [{"method": "magnitude", "sparsity": 0.7}]}
    points = expand(sweep)
    store = PointStore(tmp_path / "store")
    assert run_sweep(points, store, LocalExecutor(2))["done"] == 4
    assert len(list((store.root / "workloads").glob("*.npz"))) == 1
    assert not list(store.root.rglob("*.tmp"))


def test_a_dask_executor_in_a_with_block_keeps_one_cluster_for_pruning_and_points(tmp_path):
    sweep = {"designs": [{"preset": "stripes", "grid": {"rows": [4, 16]}}], "workloads": [SMALL],
             "pruning": [{"method": "magnitude", "sparsity": 0.6}]}
    points = expand(sweep)
    clients = []

    def note_client(finished, total, figures):
        clients.append((bool(figures.get("pruned workloads")), id(executor.client)))

    with DaskExecutor(local_workers=1) as executor:
        status = run_sweep(points, PointStore(tmp_path / "store"), executor, progress=note_client)
    assert status == {"done": 2, "failed": 0, "pending": 0}
    assert {phase for phase, _ in clients} == {True, False}  # both phases reported
    assert len({client for _, client in clients}) == 1 and executor.client is None  # one client, closed after


# ----------------------------------------------------------------------------- plots
@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    sweep = {"designs": ["dadiannao", {"preset": "pragmatic", "grid": {"first_stage_bits": [0, 2]}}],
             "workloads": [SMALL, {"synthetic": "resnet20", "max_layers": 2}],
             "pruning": ["none", {"method": "magnitude", "sparsity": [0.6]}]}
    points = expand(sweep)
    store = PointStore(tmp_path_factory.mktemp("plots") / "store")
    run_sweep(points, store, SerialExecutor())
    return store


def test_speedup_and_energy_plots_draw_the_stores_numbers(small_store, tmp_path):
    from simulator.sweep_plots import plot_sweep

    table = small_store.table()
    drawn, files = plot_sweep(table, "speedup", tmp_path, formats=("png", "svg"))
    assert sorted(f.name for f in files) == sorted(f"speedup_{w}.{x}" for w in ("alexnet_max_layers_2",
                                                                                 "resnet20_max_layers_2")
                                                   for x in ("png", "svg"))
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files if f.suffix == ".png")
    assert all(b"<svg" in f.read_bytes()[:400] for f in files if f.suffix == ".svg")
    per_key = table.groupby("key")["cycles"].sum()
    info = table.drop_duplicates("key").set_index("key")
    assert len(drawn) == len(per_key) == 12
    for row in drawn.itertuples():
        base = info.index[(info["label"] == "dadiannao") & (info["workload_spec"] == row.workload_spec)
                          & (info["pruning"] == row.pruning)]
        assert row.speedup == pytest.approx(per_key[base[0]] / per_key[row.key])
    energy, _ = plot_sweep(table, "energy", tmp_path)
    per_point = table.groupby("key")["energy_pj"].sum()
    assert energy.set_index("key")["energy_pj"].to_dict() == pytest.approx(per_point.to_dict())


def test_knob_and_pareto_plots(small_store, tmp_path):
    from simulator.sweep_plots import pareto_front, plot_sweep

    table = small_store.table()
    drawn, files = plot_sweep(table, "knob", tmp_path, knob="first_stage_bits")
    assert set(drawn["label"]) == {"pragmatic"} and len(files) == 2
    with pytest.raises(ConfigError, match="grid knobs: first_stage_bits"):
        plot_sweep(table, "knob", tmp_path, knob="colour")
    with pytest.raises(ConfigError, match="needs accuracy"):
        plot_sweep(table, "pareto", tmp_path)
    scored = table.assign(top1=table["key"].map({k: 0.5 + 0.01 * i for i, k in enumerate(sorted(set(table["key"])))}))
    drawn, files = plot_sweep(scored, "pareto", tmp_path)
    assert len(files) == 2 and "speedup" in drawn
    pts = pd.DataFrame({"speedup": [1.0, 2.0, 3.0, 2.5], "top1": [0.9, 0.8, 0.5, 0.7]})
    assert pareto_front(pts).index.tolist() == [0, 1, 3, 2]
    pts.loc[4] = [2.0, 0.7]  # beaten by (2.0, 0.8)
    assert 4 not in pareto_front(pts).index


def test_plot_cli(small_store, tmp_path, capsys):
    from simulator.cli import main

    assert main(["plot", str(small_store.root), "--kind", "energy", "--out", str(tmp_path), "--format", "svg"]) == 0
    assert len(list(tmp_path.glob("energy_*.svg"))) == 2
    assert main(["plot", str(tmp_path / "nothing.txt"), "--out", str(tmp_path)]) == 2
