"""Workload statistics (simulator/stats.py): value statistics and ideal speedups on hand-made layers."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import preset_names
from simulator.report import plot_bit_sparsity
from simulator.stats import (
    bits_histogram,
    channel_groups,
    essential_bits,
    group_precision,
    ideal_speedups,
    stats_table,
    workload_stats,
)
from workloads import Layer, Workload
from workloads.bits import booth_masks, popcount


@pytest.fixture()
def tiny() -> Workload:
    acts = np.zeros((20, 2, 2), np.int32)  # 20 channels: groups of 16 + 4 (padded)
    acts[0, 0, 0] = 7  # 3 one bits
    acts[3, 0, 1] = 8  # 1
    acts[17, 1, 1] = 5  # 2
    acts[19, 1, 0] = 255  # 8
    weights = np.array([[3, -4, 0, 1], [-1, 0, 0, 127]], np.int32)  # fc 4 -> 2
    layers = [
        Layer.conv("conv", acts, np.ones((2, 20, 1, 1), np.int32), act_bits=8, weight_bits=2),
        Layer.fc("fc", np.array([0, -3, 6, 0]), weights, act_bits=8, weight_bits=8),
    ]
    return Workload("tiny", layers)


def test_values_by_hand(tiny):
    table = workload_stats(tiny).set_index("layer")
    conv, fc = table.loc["conv"], table.loc["fc"]
    assert conv["act_zero_frac"] == pytest.approx(1 - 4 / 80)
    assert conv["act_bits_binary"] == pytest.approx((3 + 1 + 2 + 8) / 80)
    # Booth (DNNsim): 7 -> +8 -1 (2 terms), 8 -> 1, 5 -> 2, 255 -> +256 -1 (2)
    assert conv["act_bits_booth"] == pytest.approx((2 + 1 + 2 + 2) / 80)
    # groups: 4 positions x 2 channel groups; msb + 1 = 3 (7), 4 (8), 3 (5), 8 (255); all-zero groups = 1
    # (0,0): g0 = 3, g1 = 1; (0,1): g0 = 4, g1 = 1; (1,0): g0 = 1, g1 = 8; (1,1): g0 = 1, g1 = 3
    assert conv["act_group_precision"] == pytest.approx((3 + 1 + 4 + 1 + 1 + 8 + 1 + 3) / 8)
    assert conv["weight_zero_frac"] == 0 and conv["weight_bits_binary"] == 1
    assert fc["act_zero_frac"] == 0.5 and fc["act_bits_binary"] == pytest.approx((2 + 2) / 4)
    assert fc["act_group_precision"] == 3 + 1  # signed: max(msb(~-3)=1, msb(6)=2) + 1 + sign
    assert fc["weight_zero_frac"] == pytest.approx(3 / 8)
    assert fc["weight_bits_binary"] == pytest.approx((2 + 1 + 0 + 1 + 1 + 0 + 0 + 7) / 8)
    # weight groups per filter: (3,-4,0,1) -> max msb+1 over 3, ~-4=3, 1 -> 2, +1 sign = 3; (-1,0,0,127) -> 7 + 1
    assert fc["weight_group_precision"] == pytest.approx((3 + 8) / 2)
    assert list(table["macs"]) == [tiny["conv"].macs, tiny["fc"].macs]


def test_essential_bits_count_terms_of_the_magnitude():
    values = np.arange(-(1 << 15) + 1, 1 << 15, 7, dtype=np.int32)
    assert essential_bits(values, "binary").tolist() == [bin(abs(int(v))).count("1") for v in values]
    booth = [popcount(p) + popcount(n) for p, n in (booth_masks(abs(int(v))) for v in values)]
    assert essential_bits(values, "booth").tolist() == booth
    with pytest.raises(ValueError, match="csd"):
        essential_bits(values, "csd")


def test_groups_and_histogram(tiny):
    assert channel_groups(tiny["conv"]).shape == (4 * 2, 16)
    assert group_precision(np.zeros((2, 16), np.int32), signed=True).tolist() == [2, 2]
    hist = bits_histogram(tiny)
    assert hist.shape == (2, 17) and hist[0, 0] == 76 and hist[0, 8] == 1 and hist.sum(axis=1).tolist() == [80, 4]


def test_ideal_speedups(tiny, tmp_path):
    table, skipped = ideal_speedups(tiny)
    assert not skipped
    assert set(preset_names()) <= {c.split(":", 1)[1] for c in table.columns if c.startswith("ideal_speedup:")}
    assert (table["ideal_speedup:dadiannao"] == 1.0).all()
    assert table.attrs["total"]["dadiannao"] == 1.0
    full, totals, _ = stats_table(tiny)
    assert list(full["layer"]) == ["conv", "fc"] and "act_zero_frac" in full and totals["stripes"] > 0
    png = plot_bit_sparsity(tiny, tmp_path / "fig" / "bits.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
