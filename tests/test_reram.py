"""The ReRAM crossbar design (simulator/designs/reram.py): mapping and compaction by hand, the slice arithmetic,
the ADC resolution rule and its clipping, knob errors, energy parts. The fast engine's agreement with the reference
engine on random layers is in tests/test_engines.py (every design)."""

from __future__ import annotations

import numpy as np
import pytest

import pruning
from simulator import load_arch, simulate, simulate_layer
from simulator.config import ConfigError
from simulator.designs.reram import input_matrix, weight_matrix
from simulator.energy import area_breakdown, energy_breakdown
from simulator.reference import simulate_layer_reference
from workloads import Layer, Workload, layer_output


def _arch(**knobs):
    base = {"tiles": 1, "rows": 1, "columns": 4, "lanes": 2, "xbar_columns": 4, "cell_bits": 1, "input_bits": 1,
            "adcs_per_crossbar": 1, "replicate": False, "flip_columns": False}
    return load_arch("reram", **{**base, **knobs})


# weights (K=2, C=4), 3-bit signed (magnitudes up to 4: 3 bits), 1-bit cells -> 3 slices; physical columns (separate
# layout: array, slice, output): 0 k0s0, 1 k1s0, 2 k0s1, 3 k1s1, 4 k0s2, 5 k1s2 | 6..11 the same, negative array
HAND = Layer.fc("hand", np.array([1, 2, 3, 1]), np.array([[1, 0, -2, 0], [0, 0, 3, 0]]), act_bits=2, weight_bits=3,
                act_signed=False)


def test_dense_mapping_by_hand():
    row = simulate_layer(_arch(), HAND)
    # three column blocks of 4 columns, each of 4 rows in crossbars of 2 rows: 6 crossbars, every column converted
    assert row["crossbars"] == 6
    assert row["adc_conversions"] == 2 * 24  # 2 steps (2-bit inputs, 1 bit per read) x 6 crossbars x 4 columns
    assert row["dac_drives"] == 2 * 6 * 2
    # the chip has 4 crossbars: two rounds, each 2 steps x the slowest crossbar's 4 conversions (one ADC each)
    assert row["cycles"] == 2 * (2 * 4)
    assert simulate_layer(_arch(columns=6), HAND)["cycles"] == 2 * 4  # one round


def test_compaction_by_hand():
    row = simulate_layer(_arch(compaction="compact"), HAND)
    # block 0 (columns 0-3): rows 0 and 2 hold cells (w=1 at row 0, w=3 at row 2) -> 1 crossbar, columns 0, 1 and 3
    # stored (column 2, slice 1 of output 0, is zero); block 1 (columns 4-7): no cell, no crossbar; block 2: only
    # row 2 (w=-2: slice 1, column 8) -> 1 crossbar of 1 column
    assert row["crossbars"] == 2
    assert row["adc_conversions"] == 2 * (3 + 1)
    assert row["dac_drives"] == 2 * (2 + 1)
    assert row["cycles"] == 2 * 3
    assert (row["nonzero_cells"], row["weight_slices"]) == (1 + 2 + 1, 8 * 3)  # w=1: one cell, 3: two, -2: one
    ref = simulate_layer_reference(_arch(compaction="compact"), HAND)
    assert ref.cycles == row["cycles"]
    np.testing.assert_array_equal(ref.output, [1 * 1 - 2 * 3, 3 * 3])


def test_adjacent_layout_keeps_a_weights_slices_together():
    # columns: array, output, slice -> block 0 = positive k0s0, k0s1, k0s2, k1s0: rows 0 and 2 -> 1 crossbar with
    # columns k0s0, k1s0; block 1 = positive k1s1, k1s2, negative k0s0, k0s1: row 2 -> 1 crossbar, columns k1s1 and
    # negative k0s1; block 2: empty
    row = simulate_layer(_arch(compaction="compact", slice_layout="adjacent"), HAND)
    assert (row["crossbars"], row["adc_conversions"]) == (2, 2 * 4)


def test_weight_and_input_matrices_unroll_a_grouped_conv():
    rng = np.random.default_rng(1)
    layer = Layer.conv("g", rng.integers(0, 8, (4, 5, 5)), rng.integers(-4, 4, (6, 2, 3, 3)), stride=2, padding=1,
                       groups=2, act_bits=3, weight_bits=3)
    m, x = weight_matrix(layer), input_matrix(layer)
    assert m.shape == (4 * 9, 6) and x.shape == (9, 36)
    assert not m[18:, :3].any() and not m[:18, 3:].any()  # block-diagonal: group 0 sees channels 0-1 only
    np.testing.assert_array_equal((x @ m).T.reshape(6, 3, 3), layer_output(layer, layer.weights))


@pytest.mark.parametrize("signed_acts", [False, True])
def test_sixteen_bit_slices_shifted_and_summed_equal_the_integer_product(signed_acts):
    rng = np.random.default_rng(2)
    acts = rng.integers(-128, 128, 12) if signed_acts else rng.integers(0, 256, 12)
    layer = Layer.fc("wide", acts, rng.integers(-32768, 32768, (5, 12)), act_bits=8, weight_bits=16,
                     act_signed=signed_acts)
    arch = _arch(lanes=4, xbar_columns=8, cell_bits=2, input_bits=2, adc_bits=12, adcs_per_crossbar=2)
    ref = simulate_layer_reference(arch, layer)
    np.testing.assert_array_equal(ref.output, layer.weights.astype(np.int64) @ acts)
    assert ref.cycles == simulate_layer(arch, layer)["cycles"]


def _all_threes(adc_bits: int, resolution: str = "fixed") -> tuple[dict, object]:
    """One 4-row column of cells 3 (weights 3, unsigned, 2-bit cells) under 2-bit inputs of 3: the bit line sums
    4 x 3 x 3 = 36, which needs 6 bits."""
    layer = Layer.fc("threes", np.full(4, 3), np.full((1, 4), 3), act_bits=2, weight_bits=2, act_signed=False,
                     weight_signed=False)
    arch = _arch(lanes=4, xbar_columns=1, cell_bits=2, input_bits=2, adc_bits=adc_bits, adc_resolution=resolution)
    return simulate_layer(arch, layer), simulate_layer_reference(arch, layer)


def test_adc_resolution_rule_and_clipping():
    exact, ref = _all_threes(6)
    assert exact["adc_bits_max"] == 6 and exact["adc_clip_columns"] == 0 and exact["lossless"]
    assert ref.output.tolist() == [36]
    clipped, ref = _all_threes(5)
    assert clipped["adc_clip_columns"] == 1 and not clipped["lossless"]
    assert ref.output.tolist() == [31]  # the 5-bit ADC saturates at 31


def test_flipped_columns_need_one_adc_bit_less_and_stay_exact():
    # a full column of 3s (4 rows, 2-bit cells) under 2-bit inputs of 3: 36 needs 6 bits; flipped, its cells are
    # stored as 0 and the read is 0 (1 bit); 3 x (3 + 3 + 3 + 3) - 0 = 36 is rebuilt digitally
    layer = Layer.fc("threes", np.full(4, 3), np.full((1, 4), 3), act_bits=2, weight_bits=2, act_signed=False,
                     weight_signed=False)
    arch = _arch(lanes=4, xbar_columns=1, cell_bits=2, input_bits=2, adc_bits=5, flip_columns=True)
    row, ref = simulate_layer(arch, layer), simulate_layer_reference(arch, layer)
    assert row["adc_bits_max"] == 1 and row["adc_clip_columns"] == 0 and row["lossless"]
    assert ref.output.tolist() == [36]  # where the unflipped 5-bit ADC gives 31 (above)
    # cells 3, 3, 2, 0 sum 8 > 4 x 3 / 2: flipped to 0, 0, 1, 3 (sum 4); inputs 1, 2, 3, 1: the read is 0 + 0 + 3 + 3
    # = 6 (3 bits, where 8 x 3 = 24 unflipped needs 5) and 3 x 7 - 6 = 15 = 3 + 6 + 6 + 0
    layer = Layer.fc("mixed", np.array([1, 2, 3, 1]), np.array([[3, 3, 2, 0]]), act_bits=2, weight_bits=2,
                     act_signed=False, weight_signed=False)
    row, ref = simulate_layer(arch, layer), simulate_layer_reference(arch, layer)
    assert row["adc_bits_max"] == 4  # the column's worst read: 4 x 3 = 12
    assert simulate_layer(arch.replace(flip_columns=False), layer)["adc_bits_max"] == 5
    assert ref.output.tolist() == [15]
    # a column at or below half its maximum is not flipped
    half = Layer.fc("half", np.array([3, 3, 3, 3]), np.array([[3, 3, 0, 0]]), act_bits=2, weight_bits=2,
                    act_signed=False, weight_signed=False)
    assert simulate_layer(arch, half)["adc_bits_max"] == simulate_layer(arch.replace(flip_columns=False),
                                                                       half)["adc_bits_max"] == 5


def test_isaac_preset_converts_16_bit_layers_exactly_with_8_bit_adcs():
    rng = np.random.default_rng(4)
    w = rng.integers(-32768, 32768, (6, 300))
    w[:, :150] = 32767  # the first crossbar's positive columns: 128 cells of 3
    acts = rng.integers(0, 1 << 16, 300)
    layer = Layer.fc("isaac", acts, w, act_bits=16, weight_bits=16, act_signed=False)
    isaac = load_arch("reram", tiles=1, rows=1, columns=8)
    assert (isaac.adc_bits, isaac.flip_columns) == (8, True)  # ISAAC, Table 2 and its encoding
    row = simulate_layer(isaac, layer)
    assert row["adc_bits_max"] <= 8 and row["lossless"]
    unflipped = simulate_layer(isaac.replace(flip_columns=False), layer)
    assert unflipped["adc_bits_max"] == 9 and not unflipped["lossless"]  # 128 rows x 3 = 384 needs 9 bits
    np.testing.assert_array_equal(simulate_layer_reference(isaac, layer).output,
                                  w.astype(np.int64) @ acts.astype(np.int64))


def test_column_resolution_spends_less_adc_energy_than_fixed():
    rng = np.random.default_rng(3)
    w = rng.integers(-3, 4, (16, 64))  # small weights: the upper slices' columns need few bits
    layer = Layer.fc("fc", rng.integers(0, 16, 64), w, act_bits=4, weight_bits=8)
    fixed = simulate_layer(load_arch("reram"), layer)
    column = simulate_layer(load_arch("reram", adc_resolution="column"), layer)
    assert column["adc_conversions"] == fixed["adc_conversions"]
    assert column["adc_full_conversions"] < fixed["adc_full_conversions"] == fixed["adc_conversions"]
    assert column["dynamic_energy_pj"] < fixed["dynamic_energy_pj"]
    assert column["cycles"] == fixed["cycles"]


@pytest.mark.parametrize("knobs, words", [({"cell_bits": 0}, "cell_bits (0)"), ({"adc_bits": 0}, "adc_bits (0)"),
                                          ({"input_bits": 9}, "input_bits (9)"),
                                          ({"adcs_per_crossbar": 200}, "adcs_per_crossbar (200)"),
                                          ({"compaction": "sparse"}, "compaction ('sparse')")])
def test_bad_knobs_give_one_line_errors(knobs, words):
    with pytest.raises(ConfigError) as err:
        load_arch("reram", **knobs)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_pruning_frees_crossbars_only_when_compacted():
    wl = _small_network()
    pruned = pruning.magnitude(wl, sparsity=0.9).workload
    count = {(c, w.name): int(simulate(load_arch("reram", compaction=c), w).layers["crossbars"].sum())
             for c in ("none", "compact") for w in (wl, pruned)}
    assert count[("none", wl.name)] == count[("none", pruned.name)]
    assert count[("compact", pruned.name)] < count[("compact", wl.name)] <= count[("none", wl.name)]


def _small_network() -> Workload:
    rng = np.random.default_rng(4)
    layers = [Layer.conv("c1", rng.integers(0, 128, (16, 8, 8)), rng.integers(-127, 128, (32, 16, 3, 3)), padding=1,
                         act_bits=8, weight_bits=8),
              Layer.fc("fc", rng.integers(0, 128, 300), rng.integers(-127, 128, (20, 300)), act_bits=8,
                       weight_bits=8)]
    return Workload("small", layers)


def test_energy_parts_and_resident_weights():
    res = simulate("reram", _small_network())
    br = energy_breakdown(res.arch, res.layers)
    per_part = br.groupby("component")["energy_pj"].sum()
    for part in ("crossbars", "DACs", "ADCs", "sample-and-hold", "shift-and-add"):
        assert per_part[part] > 0
    assert "weight buffer reads" not in per_part  # weights live in the cells: no weight buffer, no weight traffic
    assert (res.layers["weight_buffer_bits"] == 0).all()
    assert res.layers["dram_bits"].iloc[0] == 16 * 8 * 8 * 16  # the first layer's input only (16-bit containers)
    area = area_breakdown(res.arch).set_index("component")["area_mm2"]
    chip = 168 * 12 * 8
    assert area["ADCs"] == pytest.approx(chip * 0.0096 / 8)  # ISAAC Table 2: 8 ADCs of 8 bits, 0.0096 mm2 per IMA
    assert area["crossbars"] == pytest.approx(chip * 25e-6)


def test_machine_knobs_say_what_they_mean_on_crossbars():
    from simulator.config import design_knobs

    knobs = design_knobs("reram")
    assert "crossbars per tile" in knobs["rows"].help and "word lines" in knobs["lanes"].help
    assert knobs["rows"].default == 12 and knobs["lanes"].default == 128
    assert design_knobs("stripes")["rows"].help == "PE rows per tile: filters processed at once per tile"
