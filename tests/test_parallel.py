"""workloads.parallel: every kernel compiled twice (serial, parallel=True) gives the same numbers both ways."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import encodings
from simulator.designs import bitlet, swis
from workloads import bits, parallel

RNG = np.random.default_rng(7)
BRICKS = (RNG.integers(-(1 << 11), 1 << 11, (5000, 16)) * (RNG.random((5000, 16)) < 0.6)).astype(np.int32)
BRICKS[::7] = 0  # all-zero bricks too


def _both_ways(monkeypatch, call):
    """call() run serially, then with every input big enough for the parallel twin."""
    monkeypatch.setattr(parallel, "PARALLEL_VALUES", 1 << 62)
    serial = call()
    monkeypatch.setattr(parallel, "PARALLEL_VALUES", 1)
    monkeypatch.setattr(parallel, "get_num_threads", lambda: 2)  # parts > 1 even on a one-thread machine
    return serial, call()


@pytest.mark.parametrize("call", [
    lambda: encodings.brick_pra_costs(BRICKS, bits.ENC_BOOTH, 2),
    lambda: encodings.brick_msb_lsb(BRICKS, True),
    lambda: encodings.zero_bricks(BRICKS),
    lambda: bits.terms_sum(BRICKS, bits.ENC_CSD),
    lambda: bitlet.column_costs(BRICKS, 8, 3),
    lambda: bitlet.pruned_stats(BRICKS, 8, 3),
    lambda: swis.brick_swis_costs(BRICKS, 8, 3),
    lambda: swis.swis_stats(BRICKS, 8, 3),
], ids=["pra", "msb_lsb", "zero", "terms_sum", "bitlet_columns", "bitlet_stats", "swis_costs", "swis_stats"])
def test_serial_and_parallel_twins_agree(monkeypatch, call):
    serial, par = _both_ways(monkeypatch, call)
    assert parallel.parts(10) > 1  # the second call really took the parallel path
    np.testing.assert_array_equal(np.asarray(serial), np.asarray(par))
    assert np.asarray(serial).any()  # not a vacuous comparison of zeros


def test_small_inputs_stay_serial():
    assert parallel.parts(parallel.PARALLEL_VALUES - 1) == 1
