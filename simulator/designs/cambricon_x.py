"""Cambricon-X-style indexed sparse-weight PE (Zhang et al., "Cambricon-X: An Accelerator for Sparse Neural
Networks", MICRO 2016): the target of accelerator-aware N-of-g pruning (Kang, IEEE TCSVT 30(7), 2020).

A PE keeps only its filter's non-zero weights, each with the index of the input channel it multiplies (the
compressed synapses of Cambricon-X); an activation selector (its indexing module) fetches a *chunk* of
``fetch_bricks`` consecutive activation bricks of a window, in step order (kernel row, kernel column, channel brick:
the window's flattened inputs, ``fetch_bricks`` x ``lanes`` at a time), and hands every PE the activations its
non-zero weights need; the PE's ``lanes`` multipliers take up to ``lanes`` of its non-zero weights per cycle.
A PE therefore spends ``ceil(nnz / lanes)`` cycles on a chunk, nnz = its filter's non-zero weights in the chunk
(0 cycles if it has none). The rows (filters) share the fetched chunk and are the synchronization units: in
lockstep a chunk costs the chip's slowest row; ``run_ahead`` registers let rows drift (docs/design.md §4). A chunk
no row has a weight in costs nothing (the indices skip it), as the weight-serial engine's empty steps. Balanced
weights (N-of-g with g = lanes) give every row the same count, so sparsity turns into speedup; unbalanced
sparsity costs the slowest row's count.

A step is a chunk; windows, passes, tiles and the FC column pipeline as every design (docs/design.md §3).
Multipliers are bit-parallel (``serial: none``). Ideal work and ``terms``: the non-zero weights' MACs (one
multiplier-cycle each), which are also the busy lane-cycles.

Choices the sources we could reach leave open (docs/models.md): the chunk (default 4 bricks = 64 activations with
16 multipliers, crossing kernel taps as Cambricon-X streams an output neuron's inputs: up to 4x from sparsity,
which N-of-g at 4-of-16 fills exactly), the empty-chunk rule above, and the geometry of the preset (the paper's 16
PEs of 16 multipliers: one tile of 16 rows, one column).
"""

from __future__ import annotations

import numpy as np

from workloads.bricks import weight_bricks

from .. import components as hw
from .. import kernels
from ..knobs import ENCODING, RUN_AHEAD, SERIAL, Design, Encoding, Knob, Serial
from ..plan import LayerPlan
from ..sync import MODE_MAX, run_column_pipeline, run_synchronized
from .base import DesignModel


def chunk_counts(plan: LayerPlan) -> np.ndarray:
    """Non-zero weights of every (sub-conv, filter, chunk): (G, Kg, n_chunks), a chunk being ``fetch_bricks``
    consecutive weight bricks in step order (kernel row, kernel column, channel brick)."""
    per_brick = weight_bricks(plan.low.weights != 0, plan.arch.lanes).sum(axis=-1, dtype=np.int32)  # (G,Kg,R,S,CB)
    g, kg = per_brick.shape[:2]
    steps = per_brick.reshape(g, kg, -1)
    f = plan.arch.fetch_bricks
    n_chunks = -(-steps.shape[2] // f)
    steps = np.pad(steps, ((0, 0), (0, 0), (0, n_chunks * f - steps.shape[2])))
    return np.ascontiguousarray(steps.reshape(g, kg, n_chunks, f).sum(axis=-1, dtype=np.int32))


class CambriconX(DesignModel):
    design = Design.CAMBRICON_X
    knobs = (SERIAL.but(choices=(Serial.NONE,), help="bit-parallel multipliers fed by an activation selector"),
             ENCODING.but(choices=(Encoding.NONE,), help="non-zero weights stored with their channel indices"),
             Knob("fetch_bricks", int, 4, "activation bricks the selector fetches at once (a chunk)", 1, 256),
             RUN_AHEAD.but(help="run-ahead registers R: rows (filters) may drift up to R chunks apart"))
    machine = {"tiles": 1, "rows": 16, "columns": 1, "lanes": 16, "clock_mhz": 1000.0}

    def fast_layer(self, plan: LayerPlan) -> tuple[int, int, int]:
        arch, low = plan.arch, plan.low
        counts = chunk_counts(plan)
        cost = (-(-counts // arch.lanes))[:, :, None, None, :]  # cycles of a row on a chunk: (G, Kg, 1, 1, chunks)
        lo = np.zeros_like(cost)
        ch, fl = low.channels.astype(np.int64), low.filters.astype(np.int64)
        if low.is_fc:
            cycles, busy_pe, _ = kernels.fc_weight_serial(
                cost[0, :, 0, 0, :], lo[0, :, 0, 0, :], MODE_MAX, 0, int(ch[0]), int(fl[0]), plan.passes, arch.lanes,
                arch.columns, arch.rows, arch.tiles, 1)
        else:
            cycles, busy_pe, _ = kernels.conv_weight_serial(
                cost, lo, MODE_MAX, 0, ch, fl, plan.passes, low.windows, arch.lanes, arch.columns, arch.rows,
                arch.tiles, 1, low.spread_tiles, arch.run_ahead, low.diagonal)
        busy_lane = int(counts.sum(dtype=np.int64)) * low.windows  # one multiplier-cycle per non-zero MAC
        return int(cycles), int(busy_pe), busy_lane

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int]:
        layer = plan.layer
        oh, ow = layer.output_hw
        effectual = int(np.count_nonzero(layer.weights)) * oh * ow
        return float(effectual), effectual

    # ----------------------------------------------------------------- reference engine: cycle by cycle
    def reference_layer(self, plan: LayerPlan) -> tuple[int, np.ndarray]:
        """Every row's non-zero (channel, weight) pairs of a chunk, ``lanes`` per cycle, each multiplied by the
        activation the selector routes to it; rows synchronized by run-ahead (conv) or the column pipeline (FC)."""
        arch, low = plan.arch, plan.low
        lanes, rows, cols, tiles = arch.lanes, arch.rows, arch.columns, arch.tiles
        n_sub, kg, cg = low.weights.shape[:3]
        bricks = plan.taps()  # the step order: (kernel row, kernel column, channel brick)
        chunks = [bricks[i:i + arch.fetch_bricks] for i in range(0, len(bricks), arch.fetch_bricks)]
        psum = np.zeros((n_sub, kg, low.windows), dtype=np.int64)

        def schedule_of(g: int, f: int, chunk: int) -> list[list[tuple[int, int, int, int]]]:
            """Cycles of one row on one chunk: its non-zero (kernel row, kernel column, channel, weight), in step
            order, ``lanes`` per cycle."""
            pairs = [(r, s, c, int(low.weights[g, f, c, r, s])) for r, s, cb in chunks[chunk]
                     for c in range(cb * lanes, min((cb + 1) * lanes, cg)) if low.weights[g, f, c, r, s] != 0]
            return [pairs[i:i + lanes] for i in range(0, len(pairs), lanes)]

        if low.is_fc:
            steps = [(p, c) for p in range(plan.passes) for c in range(len(chunks))]

            def units_of(i: int):
                p, chunk = steps[i]
                out = []
                for f in range(p * tiles * rows, min((p + 1) * tiles * rows, int(low.filters[0]))):
                    def apply(cycle, f=f) -> None:
                        for _, _, c, w in cycle:
                            psum[0, f, 0] += w * int(low.acts[0, c, 0, 0])

                    out.append((schedule_of(0, f, chunk), apply))
                return out

            return run_column_pipeline(len(steps), cols, units_of), psum

        steps = [(b, ws, p, c) for b in range(plan.batches) for ws in range(plan.window_sets)
                 for p in range(plan.passes) for c in range(len(chunks))]

        def where(i: int, u: int) -> tuple[int, int] | None:
            """(sub-conv, filter) of row unit u = tile * rows + row at step i, or None if it holds no filter."""
            b, _, p, _ = steps[i]
            g, f_lo, f_hi = plan.held(b, p, u // rows)
            f = f_lo + u % rows
            return (g, f) if f < f_hi else None

        def schedule(i: int, u: int):
            at = where(i, u)
            return None if at is None else schedule_of(*at, steps[i][3])

        def on_cycle(i: int, u: int, cycle) -> None:
            g, f = where(i, u)
            ws = steps[i][1]
            for w_ in range(ws * cols, min((ws + 1) * cols, low.windows)):
                y0, x0 = (w_ // low.out_w) * low.stride, (w_ % low.out_w) * low.stride
                for r, s, c, w in cycle:
                    psum[g, f, w_] += w * int(low.acts[g, c, y0 + r, x0 + s])

        return run_synchronized(len(steps), tiles * rows, arch.run_ahead, schedule, on_cycle), psum

    def parts(self, arch) -> list[hw.Part]:
        """Per lane a multiplier fed by a selector over the fetched chunk of activations; the PE's tree and
        accumulator."""
        w, lanes, pes = arch.pe_width, arch.lanes, arch.pes
        return (hw.lane_multipliers(arch)
                + hw.mux("activation selectors", pes * lanes, w, arch.fetch_bricks * lanes, "busy_lane_cycles")
                + hw.pe_back_end(arch, 2 * w))
