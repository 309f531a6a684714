"""Energy, area, memory and fair comparisons (simulator.technology, components, energy, memory, compare).

Expected values are computed here from the raw CSV numbers and the published scaling coefficients typed into the
test, not through ``simulator.technology``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator import ConfigError, load_arch, simulate, simulate_layer
from simulator.cli import main
from simulator.components import Part
from simulator.energy import area_breakdown, area_mm2, energy_breakdown, priced_parts, scale_to_area
from simulator.technology import (
    TechnologyError,
    area_factor,
    cell_area_um2,
    cell_energy_pj,
    cell_leakage_nw,
    energy_factor,
    tabulated_nodes,
)
from workloads import Layer, Workload
from workloads.synthetic import build

TABLES = Path(__file__).resolve().parent.parent / "simulator" / "tables"


def _csv(name: str) -> list[dict]:
    with open(TABLES / name) as fh:
        return list(csv.DictReader(fh))


def _area_row(component: str, capacity: str) -> dict:
    return next(r for r in _csv("area.csv") if (r["component"], r["capacity_kib"]) == (component, capacity))


def _energy_row(component: str, action: str, bits: int, capacity: str = "") -> float:
    for r in _csv("energy.csv"):
        if (r["component"], r["action"], int(r["bits"]), r["capacity_kib"]) == (component, action, bits, capacity):
            return float(r["energy_pj"])
    raise KeyError((component, action, bits, capacity))


# Stillmaker and Baas (2017) energy fit at 45 nm HP: 1.018 V^2 - 0.3107 V + 0.1539; the tables are at 0.9 V and a
# 45 nm design runs at the node's nominal 1.0 V
def _e45(v: float) -> float:
    return 1.018 * v * v - 0.3107 * v + 0.1539


TO_NOMINAL_45 = _e45(1.0) / _e45(0.9)


def _small_conv() -> Layer:
    rng = np.random.default_rng(3)
    return Layer.conv("c", rng.integers(0, 200, (12, 6, 6)), rng.integers(-90, 90, (10, 12, 3, 3)), padding=1,
                      act_bits=8, weight_bits=8, act_signed=False)


# ----------------------------------------------------------------------------- energy = counts x table entries
def test_stripes_energy_is_counts_times_table_entries():
    arch = load_arch("stripes", tiles=2, rows=4, columns=4, lanes=8, act_buffer_kib=64, weight_buffer_kib=256)
    row = simulate_layer(arch, _small_conv())
    w, lanes = 16, 8
    and_gate = _energy_row("and_gate", "toggle", 1)
    adder32 = _energy_row("adder", "add", 32) / 32  # per bit, for widths above 32 (the accumulator: 40 bits)
    adder8 = _energy_row("adder", "add", 8) / 8

    def adder(bits):  # between 8 and 32 bits: per-bit energy interpolated linearly in log2(bits)
        t = math.log2(bits / 8) / 2
        return bits * ((1 - t) * adder8 + t * adder32)

    reg = _energy_row("register", "write", 1)
    tree = 4 * adder(w) + 2 * adder(w + 1) + adder(w + 2)  # 8 inputs of 16 bits: 4 adders of 16, 2 of 17, 1 of 18
    acc = 2 * w + 8
    per_busy_pe = tree + adder32 * acc + reg * acc
    # SRAM (CACTI rows at the 45 nm nominal 1.0 V): banks of 32 KiB (activations: 64 / 2 tiles), tabulated, and
    # 128 KiB (weights), scaled by sqrt(128 / 256) from the 256 KiB entry (log2 distance 1, against 2 to 32 KiB)
    read32, write32 = _energy_row("sram", "read", 64, "32"), _energy_row("sram", "write", 64, "32")
    read256 = _energy_row("sram", "read", 64, "256")
    expected = TO_NOMINAL_45 * (row["busy_lane_cycles"] * w * and_gate + row["busy_pe_cycles"] * per_busy_pe)
    expected += (row["act_buffer_bits"] / 64 * read32 + row["output_buffer_bits"] / 64 * write32
                 + row["weight_buffer_bits"] / 64 * read256 * math.sqrt(128 / 256))
    expected += row["dram_bits"] / 64 * _energy_row("dram", "access", 64)  # the interface does not scale
    assert row["dynamic_energy_pj"] == pytest.approx(expected, rel=1e-9)
    # buffer traffic in pe_width containers
    assert row["act_buffer_bits"] == row["act_brick_reads"] * lanes * w
    assert row["weight_buffer_bits"] == row["weight_brick_reads"] * lanes * w


@pytest.mark.parametrize("memory", ["sram", "edram"])
def test_static_energy_is_leakage_times_time(memory):
    arch = load_arch("dadiannao", tiles=2, rows=4, lanes=8, act_buffer_kib=64, weight_buffer_kib=64,
                     buffer_memory=memory)
    row = simulate_layer(arch, _small_conv())
    # registers: NanGate's DFF_X1 leakage per bit (8 accumulators of 40 bits); the other logic: its area x the
    # 45 nm density; buffers: CACTI's leakage of a 32 KiB bank, 2 banks x 2 buffers
    dff = next(r for r in _csv("area.csv") if r["component"] == "register")
    reg_bits = 8 * 40
    logic_um2 = area_mm2(arch, "compute") * 1e6 - reg_bits * float(dff["area_um2"])
    density = float(next(r for r in _csv("nodes.csv") if r["node_nm"] == "45")["leakage_nw_per_um2"])
    logic_nw = logic_um2 * density + reg_bits * float(dff["leakage_nw"])
    buffers_nw = 4 * float(_area_row(memory, "32")["leakage_nw"])
    time_us = row["total_cycles"] / arch.clock_mhz
    assert row["static_energy_pj"] == pytest.approx((logic_nw + buffers_nw) * time_us * 1e-3, rel=1e-9)
    assert row["energy_pj"] == pytest.approx(row["dynamic_energy_pj"] + row["static_energy_pj"])


def test_edram_buffers_are_priced_from_their_own_rows():
    sram = load_arch("dadiannao", tiles=2, rows=4, lanes=8, act_buffer_kib=512, weight_buffer_kib=4096)
    edram = sram.replace(buffer_memory="edram")
    layer = _small_conv()
    a, b = simulate_layer(sram, layer), simulate_layer(edram, layer)
    assert a["cycles"] == b["cycles"] and a["act_buffer_bits"] == b["act_buffer_bits"]
    # banks of 256 KiB (activations) and 2 MiB (weights), tabulated: reads, writes and areas straight from the rows
    reads = (b["act_buffer_bits"] / 64 * _energy_row("edram", "read", 64, "256")
             + b["weight_buffer_bits"] / 64 * _energy_row("edram", "read", 64, "2048"))
    writes = b["output_buffer_bits"] / 64 * _energy_row("edram", "write", 64, "256")
    buffers = energy_breakdown(edram, pd.DataFrame([b]))
    dyn = buffers[(buffers["group"] == "buffers") & (buffers["kind"] == "dynamic")]["energy_pj"].sum()
    assert dyn == pytest.approx(reads + writes, rel=1e-9)
    want_um2 = 2 * (float(_area_row("edram", "256")["area_um2"]) + float(_area_row("edram", "2048")["area_um2"]))
    assert area_mm2(edram, "buffers") == pytest.approx(want_um2 * 1e-6, rel=1e-9)
    assert area_mm2(edram, "compute") == area_mm2(sram, "compute")
    assert area_mm2(edram, "buffers") < area_mm2(sram, "buffers") / 2  # denser cells



def test_breakdown_sums_to_the_layer_energy():
    arch = load_arch("pragmatic", tiles=2, rows=4, columns=4, lanes=8)
    wl = Workload("w", [_small_conv(), _small_conv().with_values(name="d")])
    res = simulate(arch, wl)
    br = energy_breakdown(arch, res.layers)
    per_layer = br.groupby("layer", sort=False)["energy_pj"].sum()
    assert per_layer.to_numpy() == pytest.approx(res.layers["energy_pj"].to_numpy(), rel=1e-9)
    assert set(br["kind"]) == {"dynamic", "static"}
    assert {"term generators", "first-stage shifters", "second-stage shifters", "run-ahead registers"} <= set(
        br["component"])


def test_every_preset_prices_its_parts():
    from simulator.config import preset_names

    for name in preset_names():
        arch = load_arch(name)
        assert area_mm2(arch, "compute") > 0, name
        assert not area_breakdown(arch).empty


# ----------------------------------------------------------------------------- no silent defaults
def test_unknown_component_action_or_width_is_an_error():
    with pytest.raises(TechnologyError, match="unknown component 'flux_capacitor'"):
        cell_energy_pj("flux_capacitor", "add", 8)
    with pytest.raises(TechnologyError, match="no entry for component 'adder' action 'multiply'"):
        cell_energy_pj("adder", "multiply", 8)
    with pytest.raises(TechnologyError, match="not tabulated"):
        cell_energy_pj("fp_multiplier", "multiply", 24)  # scaling 'none'
    with pytest.raises(TechnologyError, match="capacity_kib"):
        cell_energy_pj("sram", "read", 64)


def test_a_design_part_missing_from_the_tables_fails_the_simulation(monkeypatch):
    from simulator.designs.stripes import Stripes

    monkeypatch.setattr(Stripes, "parts", lambda self, arch: [Part("warp core", "warp_core", 8, 1, "add",
                                                                   "busy_pe_cycles", 1)])
    priced_parts.cache_clear()
    try:
        with pytest.raises(TechnologyError, match="warp_core"):
            simulate_layer(load_arch("stripes", tiles=3), _small_conv())
    finally:
        priced_parts.cache_clear()


def test_part_counter_must_exist(monkeypatch):
    with pytest.raises(ValueError, match="per"):
        Part("x", "adder", 8, 1, "add", "not a name", 1)
    arch = load_arch("stripes", tiles=3)  # a configuration no other test priced (priced_parts is cached)
    moon = [Part("x", "adder", 8, 1, "add", "cycles_of_the_moon", 1)]
    monkeypatch.setattr(type(arch.model), "parts", lambda self, a: moon)
    with pytest.raises(ConfigError, match="cycles_of_the_moon"):
        priced_parts(arch)


# ----------------------------------------------------------------------------- technology scaling
def test_scaling_at_tabulated_nodes():
    # the published fits evaluated by hand: 32 nm HP 0.8367 V^2 - 0.4341 V + 0.1701; 65 nm 3.755 V^2 - 4.398 V + 1.975
    def e32(v):
        return 0.8367 * v * v - 0.4341 * v + 0.1701

    def e65(v):
        return 3.755 * v * v - 4.398 * v + 1.975

    assert energy_factor(45, 1.0, 32, 0.9) == pytest.approx(e32(0.9) / _e45(1.0), rel=1e-12)
    assert energy_factor(65, 1.1, 45, 1.0) == pytest.approx(_e45(1.0) / e65(1.1), rel=1e-12)
    # REFERENCES.md: at equal Vdd, 45 -> 32 nm energy is about 0.65x
    assert energy_factor(45, 1.0, 32, 1.0) == pytest.approx(0.65, rel=0.05)
    assert area_factor(65, 45) == pytest.approx(1 / 1.5)
    assert area_factor(45, 7) == pytest.approx(0.059)
    assert cell_area_um2("adder", 32, node_nm=65) == pytest.approx(137 * 1.5)
    assert 28 not in tabulated_nodes()
    with pytest.raises(TechnologyError, match="28 nm is not tabulated"):
        energy_factor(45, 1.0, 28)


def test_memory_leakage_comes_from_its_rows_and_scales_with_the_power_fits():
    # Stillmaker and Baas power fits: 45 nm 5462 V^2 - 1760 V + 522.4 at 1.0 V;
    # 65 nm 12890 V^2 - 10510 V + 4362 at 1.1 V
    p45 = 5462 - 1760 + 522.4
    p65 = 12890 * 1.21 - 10510 * 1.1 + 4362
    leak32 = float(_area_row("sram", "32")["leakage_nw"])
    assert cell_leakage_nw("sram", 64, 32) == pytest.approx(leak32)
    assert cell_leakage_nw("sram", 64, 64) == pytest.approx(leak32 * 2)  # linear in the capacity, nearest row
    assert cell_leakage_nw("edram", 64, 32, 65) == pytest.approx(
        float(_area_row("edram", "32")["leakage_nw"]) * p65 / p45)
    # NanGate cells carry the library's leakage (DFF_X1 per register bit); other logic: area x nW per um2
    density = float(next(r for r in _csv("nodes.csv") if r["node_nm"] == "45")["leakage_nw_per_um2"])
    assert cell_leakage_nw("adder", 32) == pytest.approx(137 * density)
    assert cell_leakage_nw("register", 40) == pytest.approx(40 * 79.112308)


def test_cacti_script_edits_exactly_the_lines_it_names():
    import importlib.util

    script = TABLES.parent.parent / "scripts" / "cacti_buffers.py"
    spec = importlib.util.spec_from_file_location("cacti_buffers", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    template = "\n".join(['-size (bytes) 131072', '-block size (bytes) 64', '-associativity 2', '-technology (u) 0.090',
                          '-Data array cell type - "itrs-hp"', '-output/input bus width 512', '-cache type "cache"',
                          '-Tag array cell type - "itrs-hp"'])
    out = mod.config(template, 256, "lp-dram").splitlines()
    assert out == ['-size (bytes) 262144', '-block size (bytes) 8', '-associativity 1', '-technology (u) 0.045',
                   '-Data array cell type - "lp-dram"', '-output/input bus width 64', '-cache type "ram"',
                   '-Tag array cell type - "itrs-hp"']
    with pytest.raises(ValueError, match="associativity"):
        mod.config(template.replace("-associativity 2", ""), 8, "itrs-lstp")


def test_cacti_script_patches_the_dram_write_factor_once():
    import importlib.util

    script = TABLES.parent.parent / "scripts" / "cacti_buffers.py"
    spec = importlib.util.spec_from_file_location("cacti_buffers", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    line = ("    dynWriteEnergy += (C_bl + 2*C_drain_sense_amp_iso + C_sense_amp_latch) *\n"
            "      (g_tp.dram_cell_Vdd / 2) * g_tp.dram_cell_Vdd /* subarray.num_cols * num_subarrays_per_mat*/"
            " * num_act_mats_hor_dir*100;\n")
    fixed = mod.patch_dram_write("x\n" + line + "y\n")
    assert fixed == "x\n" + line.replace("* num_act_mats_hor_dir*100;", "* 2;") + "y\n"
    assert mod.patch_dram_write(fixed) == fixed  # already patched: unchanged
    with pytest.raises(ValueError, match="found 0"):
        mod.patch_dram_write("x\n")
    with pytest.raises(ValueError, match="found 2"):
        mod.patch_dram_write(line + line)
    # the tables hold the patched build: an eDRAM write costs about a read (full swing on the written bitlines)
    rows = {(r["component"], r["action"], r["capacity_kib"]): float(r["energy_pj"]) for r in _csv("energy.csv")
            if r["component"] == "edram"}
    for kib in ("8", "32", "256", "1024", "2048"):
        assert 1.0 < rows[("edram", "write", kib)] / rows[("edram", "read", kib)] < 1.5


def test_linear_widths_between_entries_interpolate_per_bit_values_in_log2():
    # Horowitz: 8b add 0.03 pJ / 36 um2, 32b add 0.1 pJ / 137 um2; 16 bits is halfway in log2
    assert cell_energy_pj("adder", "add", 16) == pytest.approx(16 * (0.03 / 8 + 0.1 / 32) / 2 * TO_NOMINAL_45)
    assert cell_area_um2("adder", 16) == pytest.approx(16 * (36 / 8 + 137 / 32) / 2)
    t = math.log2(20 / 8) / 2
    assert cell_area_um2("adder", 20) == pytest.approx(20 * ((1 - t) * 36 / 8 + t * 137 / 32))
    # tabulated widths are exact, and cost grows with the width (nearest-entry scaling made 16 bits cost more than 17)
    assert cell_energy_pj("adder", "add", 8) == pytest.approx(0.03 * TO_NOMINAL_45)
    energies = [cell_energy_pj("adder", "add", b) for b in range(4, 65)]
    areas = [cell_area_um2("adder", b) for b in range(4, 65)]
    assert all(b > a for a, b in zip(energies, energies[1:])) and all(b > a for a, b in zip(areas, areas[1:]))


def test_width_scaling_rules():
    # multiplier: quadratic from the nearest tabulated width (16 bits: 8 and 32 are equally far; the smaller wins)
    assert cell_energy_pj("multiplier", "multiply", 16) == pytest.approx(0.2 * 4 * TO_NOMINAL_45)
    assert cell_area_um2("multiplier", 16) == pytest.approx(282 * 4)
    # adder: linear from 32 bits
    assert cell_energy_pj("adder", "add", 40) == pytest.approx(0.1 * 40 / 32 * TO_NOMINAL_45)
    # SRAM access: sqrt of the capacity from the nearest entry (4 MiB: from CACTI's 2 MiB bank, x sqrt 2, at 1.0 V)
    assert cell_energy_pj("sram", "read", 64, 4096) == pytest.approx(
        _energy_row("sram", "read", 64, "2048") * math.sqrt(2))


# ----------------------------------------------------------------------------- area and iso-area
def test_area_is_count_times_cell_area():
    arch = load_arch("dadiannao", tiles=2, rows=4, lanes=8, act_buffer_kib=32, weight_buffer_kib=32)
    # 64 multipliers 16x16 (282 x 4 um2), 8 trees of 8 products of 32 bits (4 adders of 32 bits, 2 of 33, 1 of 34),
    # 8 accumulators (adder + register, 40 bits), two SRAM arrays of 2 banks of 16 KiB (CACTI's 8 and 32 KiB banks
    # are equally near in log2: the smaller one, scaled linearly to 16 KiB)
    tree_bits = 4 * 32 + 2 * 33 + 34
    bank = float(_area_row("sram", "8")["area_um2"]) * 16 / 8
    want = 64 * 282 * 4 + 8 * 137 * tree_bits / 32 + 8 * (137 * 40 / 32 + 4.522 * 40) + 2 * 2 * bank
    assert area_mm2(arch) == pytest.approx(want * 1e-6, rel=1e-9)


@pytest.mark.parametrize("preset,along", [("stripes", "columns"), ("loom", "tiles"), ("dadiannao", "tiles")])
def test_scale_to_area_lands_within_one_step(preset, along):
    base = load_arch(preset)
    target = 2.6 * area_mm2(base, "compute")
    sized = scale_to_area(base, target, along=along, group="compute")
    n = getattr(sized, along)
    step = area_mm2(base.replace(**{along: n + 1}), "compute") - area_mm2(base.replace(**{along: n}), "compute")
    assert abs(area_mm2(sized, "compute") - target) <= step
    assert sized.name.startswith(preset + "@")


# ----------------------------------------------------------------------------- memory
def test_huge_fc_with_tiny_bandwidth_is_memory_bound():
    rng = np.random.default_rng(0)
    layer = Layer.fc("fc", rng.integers(0, 100, 2048), rng.integers(-100, 100, (1024, 2048)), act_bits=8,
                     weight_bits=8, act_signed=False)
    arch = load_arch("stripes", dram_gb_per_s=1.0)
    row = simulate_layer(arch, layer)
    # weights (fit in 32 MiB) once, input and output (first and last layer) once, all in 16-bit containers
    bits = (1024 * 2048 + 2048 + 1024) * 16
    per_cycle = 1.0 * 8e9 / 980e6
    assert row["dram_bits"] == bits
    assert row["memory_cycles"] == math.ceil(bits / per_cycle)
    assert row["bound"] == "memory"
    assert row["total_cycles"] == row["memory_cycles"] > row["cycles"]
    assert row["time_us"] == pytest.approx(row["total_cycles"] / 980)
    serial = simulate_layer(arch.replace(double_buffering=False), layer)
    assert serial["total_cycles"] == row["cycles"] + row["memory_cycles"]


def test_weights_that_do_not_fit_are_reread_per_window_set_and_loom_packs():
    layer = _small_conv()  # 10 x 12 x 9 = 1080 weights, 36 windows
    arch = load_arch("stripes", tiles=2, rows=4, columns=4, lanes=8, weight_buffer_kib=1, act_buffer_kib=64)
    row = simulate_layer(arch, layer, first=False, last=False)
    assert row["dram_bits"] == 1080 * 16 * 9  # 17,280 bits > 8,192: re-read for each of 9 window sets
    loom = load_arch("loom", tiles=2, rows=4, columns=4, lanes=8, act_buffer_kib=64)
    assert simulate_layer(loom, layer, first=False, last=False)["dram_bits"] == 1080 * 8  # stored at 8 bits


# ----------------------------------------------------------------------------- fair comparisons
def test_speedup_in_time_uses_each_clock_and_energy_efficiency():
    wl = Workload("w", [_small_conv()])
    base = simulate("dadiannao", wl)
    slow = simulate(load_arch("stripes", clock_mhz=490.0), wl)
    fast = simulate("stripes", wl)
    assert slow.speedup_over(base) == fast.speedup_over(base)  # cycles ignore the clock
    assert slow.speedup_over(base, basis="time") == pytest.approx(fast.speedup_over(base, basis="time") / 2)
    assert fast.energy_efficiency_over(base) == pytest.approx(base.energy_pj / fast.energy_pj)
    with pytest.raises(ValueError, match="basis"):
        fast.speedup_over(base, basis="joules")
    m = fast.metrics()
    assert m["tops_per_w"] == pytest.approx(2 * fast.macs / fast.energy_pj)
    assert m["edp_pj_us"] == pytest.approx(fast.energy_pj * fast.time_us)


def test_lossy_designs_are_marked():
    wl = Workload("w", [_small_conv()])
    swis = simulate(load_arch("swis", shared_terms=1), wl)
    assert not swis.lossless
    eff = load_arch("swis", shared_terms=1).model.effective_weights(load_arch("swis", shared_terms=1), wl.layers[0])
    w = wl.layers[0].weights.astype(float)
    assert swis.layers["weight_rel_error"].iat[0] == pytest.approx(np.linalg.norm(eff - w) / np.linalg.norm(w))
    assert simulate("stripes", wl).lossless


def test_compare_cli(tmp_path, capsys):
    out = tmp_path / "cmp.csv"
    plots = tmp_path / "plots"
    assert main(["compare", "stripes", "swis", "-w", "alexnet", "--layers", "2", "--out", str(out),
                 "--plots", str(plots)]) == 0
    text = capsys.readouterr().out
    assert "speedup_time" in text and "energy_efficiency" in text and "--accuracy" in text  # swis is lossy
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table["arch"]) == ["dadiannao", "stripes", "swis"]
    assert table.loc[0, "speedup_time"] == 1.0 and table.loc[0, "energy_efficiency"] == 1.0
    assert not table.loc[2, "lossless"]
    assert (out.with_name("cmp.run.json")).is_file()
    for name in ("energy.png", "area.png", "speedup_vs_energy.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_energy_plot_stacks_the_breakdown(monkeypatch, tmp_path):
    from simulator import report

    wl = Workload("w", [_small_conv()])
    results = [simulate("dadiannao", wl), simulate("stripes", wl)]
    seen = {}
    real = report._stacked

    def spy(ax, table, index, column, value):
        seen["table"] = table
        real(ax, table, index, column, value)

    monkeypatch.setattr(report, "_stacked", spy)
    report.plot_energy_breakdown(results, "t", tmp_path / "e.png")
    per_arch = seen["table"].groupby("arch")["energy_uj"].sum()
    for r in results:
        assert per_arch[r.arch.name] == pytest.approx(r.energy_pj * 1e-6)


def test_group_energy_equals_the_breakdown_summed_by_group():
    from simulator.energy import group_energy

    res = simulate("pragmatic", build("alexnet", max_layers=3))
    br = energy_breakdown(res.arch, res.layers).groupby(["group", "layer"], sort=False)["energy_pj"].sum()
    groups = group_energy(res.arch, res.layers)
    assert set(groups) == set(br.index.get_level_values("group"))
    for group, values in groups.items():
        np.testing.assert_allclose(values, br[group].reindex(res.layers["layer"]).to_numpy(), rtol=1e-12)


def test_an_adder_tree_has_one_part_per_level_as_wide_as_its_operands():
    from simulator.components import adder_tree, tree_levels

    assert tree_levels(16, 1) == [(8, 1), (4, 2), (2, 3), (1, 4)]
    assert tree_levels(5, 8) == [(2, 8), (1, 9), (1, 10)]  # 5 -> 3 -> 2 -> 1 values
    assert tree_levels(1, 8) == [] and adder_tree("t", 3, 1, 8) == []
    parts = adder_tree("t", 3, 6, 16, per="busy_pe_cycles")  # 6 -> 3 -> 2 -> 1: 3 adders of 16, 1 of 17, 1 of 18
    assert [(p.count, p.bits, p.uses) for p in parts] == [(9, 16, 3), (3, 17, 1), (3, 18, 1)]
    assert sum(p.uses for p in parts) == 6 - 1


def test_check_papers_on_chip_power_and_absolute_table():
    import importlib.util

    script = TABLES.parent.parent / "scripts" / "check_papers.py"
    spec = importlib.util.spec_from_file_location("check_papers", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    wl = build("alexnet", seed=0, max_layers=2)
    arch = load_arch("pragmatic", tech_node_nm=65, buffer_memory="edram")
    res = simulate(arch, wl)
    power = mod.on_chip_power_w(res, mod.group_energy_pj(res))
    # watts = pJ / us * 1e-6, summed from the tidy breakdown, DRAM (off-chip) left out
    br = res.energy_breakdown()
    seconds = float(res.layers["total_cycles"].sum()) / (arch.clock_mhz * 1e6)
    for group in ("compute", "buffers"):
        assert power[group] == pytest.approx(br.loc[br["group"] == group, "energy_pj"].sum() * 1e-12 / seconds)
    assert power["compute"] > 0 and power["buffers"] > 0
    row = {"design": "pragmatic", "paper": "Pragmatic", "workload": "w", "area_mm2": 89.25, "base_area_mm2": 78.71,
           "power_w": {"compute": 3.4, "buffers": 19.6}, "base_power_w": {"compute": 3.3, "buffers": 61.5}}
    other = dict(row, design="stripes")
    lines = mod.absolute_table([row, other]).splitlines()
    assert len(lines) == 3  # header, rule, the Pragmatic row only
    assert lines[2].split(" | ")[2:] == ["78.7 mm2", "90 mm2", "64.8 W (3.3 + 61.5)", "18.8 W", "89.2 mm2",
                                         "122 mm2", "23.0 W (3.4 + 19.6)", "38.8 W |"]
