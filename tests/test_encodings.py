"""Term encodings and Pragmatic's shifter rule, against their definitions and published averages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.designs.pragmatic import booth_digits, signed_digits
from simulator.encodings import brick_pra_costs, pra_cycles
from simulator.knobs import Encoding
from workloads.bits import ENC_BINARY, ENC_BOOTH, ENC_CSD, booth_masks, csd_masks, mask_table, value_terms
from workloads.bricks import to_bricks

N15 = np.arange(1 << 15)


def _value(pos: int, neg: int) -> int:
    return pos - neg


@pytest.mark.parametrize("masks", [booth_masks, csd_masks])
def test_encodings_represent_every_15bit_magnitude(masks):
    for n in range(1 << 15):
        pos, neg = masks(n)
        assert pos & neg == 0
        assert _value(pos, neg) == n, n


def test_python_booth_digits_match_the_numba_masks():
    for n in range(0, 1 << 15, 7):
        pos, neg = booth_masks(n)
        digits = booth_digits(n)
        assert sum(s << p for p, s in digits) == n
        assert sum(1 << p for p, s in digits if s > 0) == pos
        assert sum(1 << p for p, s in digits if s < 0) == neg


def test_average_terms_on_15bit_magnitudes_match_design_doc():
    # docs/design.md §4: 5.66 terms (DNNsim Booth), 7.50 (binary), 5.44 (CSD) on 15-bit magnitudes
    assert value_terms(N15, ENC_BINARY).mean() == pytest.approx(7.50, abs=0.005)
    assert value_terms(N15, ENC_BOOTH).mean() == pytest.approx(5.66, abs=0.005)
    assert value_terms(N15, ENC_CSD).mean() == pytest.approx(5.44, abs=0.005)


def test_booth_collapses_runs_of_three_or_more_ones():
    assert booth_digits(0b111) == [(0, -1), (3, 1)]
    assert booth_digits(0b11) == [(0, 1), (1, 1)]  # runs of two stay plain
    assert booth_digits(0b1110111) == [(0, -1), (3, -1), (7, 1)]


def test_csd_is_non_adjacent():
    for n in range(1, 1 << 12):
        pos, neg = csd_masks(n)
        m = pos | neg
        assert m & (m >> 1) == 0
        assert sum(s << p for p, s in signed_digits(n, Encoding.CSD)) == n


def _pra_literal(values, b):
    """Straight from docs/design.md §4 on plain binary magnitudes."""
    v = [abs(x) for x in values]
    cycles = 0
    while any(v):
        o = min((x & -x).bit_length() - 1 for x in v if x)
        for i, x in enumerate(v):
            if x and (x & -x).bit_length() - 1 <= o + (1 << b) - 1:
                v[i] = x & (x - 1)
        cycles += 1
    return max(cycles, 1)


bricks = st.lists(st.integers(-(1 << 15), (1 << 15) - 1), min_size=1, max_size=16)


@given(bricks, st.integers(0, 4))
def test_pra_kernel_matches_the_literal_rule(values, b):
    arr = np.array([values], dtype=np.int32)
    assert brick_pra_costs(arr, ENC_BINARY, b)[0] == _pra_literal(values, b)


@given(bricks)
def test_pra_closed_forms(values):
    masks = np.array([abs(v) for v in values], dtype=np.int64)
    # B = 0: one bit position per cycle -> popcount of the OR
    union = 0
    for m in masks:
        union |= int(m)
    assert pra_cycles(masks.copy(), 0) == max(1, bin(union).count("1"))
    # B large (4 reaches all 16 positions): every lane advances each cycle -> max popcount
    assert pra_cycles(masks.copy(), 4) == max(1, max(bin(int(m)).count("1") for m in masks))


def test_mask_table_covers_unsigned_16bit():
    assert mask_table(ENC_BINARY)[65535] == 65535
    assert mask_table(ENC_CSD)[65535] == (1 << 16) | 1  # 2^16 - 1


def test_to_bricks_pads_the_channel_axis():
    a = np.arange(5 * 2 * 3).reshape(5, 2, 3)
    b = to_bricks(a, 4, channel_axis=0)
    assert b.shape == (2, 2, 3, 4)
    assert list(b[1, 0, 0]) == [a[4, 0, 0], 0, 0, 0]
    assert list(b[0, 1, 2]) == list(a[0:4, 1, 2])
