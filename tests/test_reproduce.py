"""Reproductions (scripts/reproduce): every sweep file is valid, and a reproduction's figure is the one a direct
simulation gives."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from simulator import load_arch, simulate
from simulator.cli import REPRODUCE_DIR, main, reproductions
from simulator.sweep import expand
from workloads import load_builtin
from workloads.synthetic import build

from .conftest import shared_path


def test_every_paper_of_the_issue_has_a_reproduction():
    assert {"stripes", "dynamic_stripes", "pragmatic", "loom", "laconic", "tactical", "bitfusion", "bitx", "swis",
            "bitpruner", "kang"} <= set(reproductions())
    for paper in reproductions():
        assert (REPRODUCE_DIR / f"{paper}.yaml").is_file(), paper


@pytest.mark.parametrize("paper", reproductions())
def test_reproduction_sweeps_expand(paper):
    shared_path("workloads")
    needs_torch = any(w in (REPRODUCE_DIR / f"{paper}.yaml").read_text() for w in ("resnet20", "resnet56"))
    if needs_torch and importlib.util.find_spec("torch") is None:
        pytest.skip("the CIFAR ResNets need torch")
    points = expand(REPRODUCE_DIR / f"{paper}.yaml")
    assert points and len({p.key for p in points}) == len(points)


@pytest.mark.slow  # imports and simulates three networks
def test_stripes_reproduction_equals_a_direct_simulation(tmp_path, capsys):
    shared_path("workloads")
    pytest.importorskip("torch")
    out = tmp_path / "stripes.json"
    assert main(["reproduce", "stripes", "--jobs", "1", "--out", str(tmp_path / "store"), "--json", str(out)]) == 0
    claims = {c["claim"]: c["ours"] for c in json.loads(out.read_text())["claims"]}
    speedups = []
    for wl in (build("alexnet"), load_builtin("resnet20-cifar10"), load_builtin("resnet56-cifar10")):
        base = simulate(load_arch("dadiannao", tech_node_nm=65), wl).cycles
        speedups.append(base / simulate(load_arch("stripes", tech_node_nm=65), wl).cycles)
    geomean = math.exp(sum(map(math.log, speedups)) / 3)
    assert claims["speedup over DaDianNao (geomean over the workloads)"] == f"{geomean:.2f}x"
    assert "1.92x [A]" in capsys.readouterr().out
