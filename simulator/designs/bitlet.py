"""Bitlet (MICRO'21) and BitX (ICPP'21): weight-serial, bit-interleaved significance columns.

Bitlet ("bit interleaving", Lu et al., MICRO 2021) splits a group of weights into significance columns: column j
holds the weights whose magnitude has bit j set. Every column is a selector that picks one of its set bits per
cycle, so its activation is added (shifted by j, signed by the weight) to the PE's sum; all columns work in
parallel. A group of ``group_size`` lanes of a row's weight brick therefore costs the largest column popcount
(at least one cycle), and a row (PE) costs the slowest of its ``lanes / group_size`` groups.

BitX (Li et al., ICPP 2021) prunes at run time: of the group's columns only those at or above
``group_msb - kept_columns + 1`` are processed (group_msb = highest set bit over the group's magnitudes); the
bits below are dropped, so the design multiplies ``effective_weights`` (lossy). Float32 weights (BitX only) are
first aligned to the group's largest exponent e_max, hidden bit included: each magnitude becomes the integer
``floor(|w| / 2^(e_max - 23))`` (24 columns; bits below 2^(e_max - 23) are shifted out and lost), then the same
column rule applies. Fixed-point weights are sign-magnitude integers of up to 16 bits.

How BitX processes its kept columns is not in the sources we could reach (``column_schedule``): ``parallel`` (the
default) is Bitlet's PE, every kept column popping one set bit per cycle, so a group costs its largest kept column
popcount; ``serial`` takes one whole non-empty kept column per cycle, msb first (bit-serial over significance,
every lane of the column added at once), so a group costs its number of non-empty kept columns, about ``k`` for
float32 groups: keeping k of the 24 aligned columns then gains about 24/k (docs/models.md, scripts/bitx_study.py).

Every row is its own unit (``group_size`` groups lanes here, ``GROUP_AXIS``): rows run in lockstep, or drift
with ``run_ahead``. Integer layers use the engines' brick path: ``brick_stats`` counts column popcounts per brick
(numba), ``brick_cycles`` pops one bit per column per cycle (plain Python). Float32 layers cannot ride the brick
path (int32 bricks, int64 partial sums), so the whole-layer hooks run the same two rules on the aligned
magnitudes: ``fast_run`` with the fast engine's kernels, ``reference_exact`` with the literal synchronization
(``simulator.sync``) and its own float alignment, accumulating Python integers in units of 2^-149 (float32's
smallest unit): exact, rounded once to float64 at the end, which the reference engine returns as the outputs.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import deque

import numpy as np
from numba import prange

from workloads import Layer
from workloads.bits import kept_low, magnitude_union, popcount
from workloads.bricks import channel_rows, channels_are_bricked_in_order, weight_brick_index
from workloads.layer import WeightFormat
from workloads.parallel import kernel, parts

from .. import components as hw
from .. import kernels
from ..config import ArchConfig
from ..knobs import ENCODING, GROUP_SIZE, RUN_AHEAD, SERIAL, ConfigError, Design, Encoding, Knob, Serial
from ..plan import LayerPlan, Operand
from ..sync import MODE_MAX, run_column_pipeline, run_synchronized
from .base import BrickStats, Cycle, DesignModel, weight_error_fields

FP32_MANTISSA_BITS = 24  # hidden bit + 23 fraction bits: the aligned columns of a float32 group
FP32_MIN_EXP = -126  # exponent of the smallest normal float32 (subnormals share it, without the hidden bit)
FP32_UNIT_EXP = FP32_MIN_EXP - (FP32_MANTISSA_BITS - 1)  # -149: float32's smallest unit, the reference's psum unit


# ----------------------------------------------------------------------------- fast path (numpy / numba)
# SPREAD[x]: the 8 bits of x spread one per byte, so that adding spread words counts set bits per column
SPREAD = np.array([sum(((x >> i) & 1) << (8 * i) for i in range(8)) for x in range(256)], dtype=np.uint64)


@kernel
def _column_costs(n_parts, mags, group, kept, serial, spread, out):
    n, lanes = mags.shape
    for b in prange(n):
        worst = 1
        for g0 in range(0, lanes, group):
            union = 0
            acc0 = np.uint64(0)  # per-column counters, one byte each: columns 0-7, 8-15, 16-23
            acc1 = np.uint64(0)
            acc2 = np.uint64(0)
            for i in range(g0, g0 + group):
                m = abs(mags[b, i])
                union |= m
                acc0 += spread[m & 255]
                acc1 += spread[(m >> 8) & 255]
                acc2 += spread[(m >> 16) & 255]
            if union == 0:
                continue
            msb = 0
            while (union >> (msb + 1)) != 0:
                msb += 1
            low = 0 if kept <= 0 else max(0, msb - kept + 1)
            if serial:  # one non-empty kept column per cycle
                rest = union >> low
                count = 0
                while rest:
                    rest &= rest - 1
                    count += 1
                if count > worst:
                    worst = count
                continue
            for j in range(low, msb + 1):
                word = acc0 if j < 8 else (acc1 if j < 16 else acc2)
                count = (word >> np.uint64(8 * (j % 8))) & np.uint64(255)
                if count > worst:
                    worst = count
        out[b] = worst


def column_costs(mags: np.ndarray, group: int, kept: int, serial: bool = False) -> np.ndarray:
    """Cycles of every brick (row of ``mags``, signed values or magnitudes < 2^24): per group of ``group`` lanes,
    the largest popcount over the kept columns (all if ``kept`` <= 0, else those >= group msb - kept + 1), at least
    1; a brick costs its slowest group. ``serial``: a group costs instead its number of non-empty kept columns (at
    least 1). Column counts are accumulated bytewise (``group`` <= 255)."""
    if group > 255:
        raise ValueError(f"group_size ({group}) must be at most 255 for Bitlet / BitX column counters")
    out = np.empty(mags.shape[0], dtype=np.int32)
    _column_costs(parts(mags.size), mags, group, kept, bool(serial), SPREAD, out)
    return out


def pruned_stats(rows: np.ndarray, group: int, kept: int) -> tuple[int, float, float]:
    """Over ``rows`` (int, channels on the last axis), keeping per group of ``group`` consecutive channels only the
    columns >= group msb - kept + 1 (every column if ``kept`` <= 0), in one pass: (set bits kept,
    ||w' - w||^2, ||w||^2), w' the kept weights with their signs (not built)."""
    kept_bits, err2, norm2 = _pruned_stats(parts(rows.size), rows, group, kept)
    return int(kept_bits), float(err2), float(norm2)


@kernel
def _pruned_stats(n_parts, rows, group, kept):
    kept_bits = 0
    err2 = 0.0
    norm2 = 0.0
    n, c = rows.shape
    for b in prange(n):
        row = rows[b]
        for g0 in range(0, c, group):
            g1 = min(g0 + group, c)
            low = kept_low(magnitude_union(row, g0, g1), kept)
            for i in range(g0, g1):
                v = row[i]
                m = v if v >= 0 else -v
                k = m >> low
                kept_bits += popcount(k)
                d = float(m - (k << low))  # |w' - w|: the pruned low columns
                err2 += d * d
                norm2 += float(v) * float(v)
    return kept_bits, err2, norm2


def _msb(values: np.ndarray) -> np.ndarray:
    """Highest set bit of non-negative integers < 2^53 (-1 for 0)."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64) - 1


def align_fp32(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 weights grouped on the last axis -> (aligned magnitudes int64 < 2^24, group exponent of column 0).

    Each group is aligned to its largest exponent e_max (hidden-bit exponent; subnormals count as -126): a magnitude
    becomes floor(|w| / 2^(e_max - 23)). An all-zero group has magnitudes 0 and exponent -149.
    """
    a = np.abs(groups.astype(np.float64))
    exp = np.maximum(np.frexp(a)[1].astype(np.int64) - 1, FP32_MIN_EXP)
    e_max = np.where(a > 0, exp, np.iinfo(np.int64).min).max(axis=-1)
    nonzero = a.max(axis=-1) > 0
    e_max = np.where(nonzero, e_max, FP32_MIN_EXP)
    mags = np.floor(np.ldexp(a, (FP32_MANTISSA_BITS - 1 - e_max)[..., None])).astype(np.int64)
    return mags, np.where(nonzero, e_max - (FP32_MANTISSA_BITS - 1), FP32_UNIT_EXP)


def prune_columns(groups: np.ndarray, kept: int) -> np.ndarray:
    """Clear, per group (last axis), the bits below group msb - kept + 1 (``kept`` <= 0: keep every column)."""
    if kept <= 0:
        return groups
    low = np.maximum(_msb(np.bitwise_or.reduce(groups, axis=-1)) - kept + 1, 0)
    return groups & ~((np.int64(1) << low) - 1)[..., None]


def _popcount(values: np.ndarray) -> int:
    """Set bits over an array of non-negative integers."""
    return int(np.bitwise_count(values.astype(np.uint64)).sum())


@dataclasses.dataclass(frozen=True)
class SerialWeights:
    """A layer's weights as the PE array sees them: lowered, cut into bricks (G, Kg, R, S, CB, lanes)."""

    index: np.ndarray  # flat index + 1 into layer.weights of every brick lane, 0 where no weight sits
    values: np.ndarray  # the weights (int32, or float32 for fp32 layers), 0 where no weight sits


def serial_weights(arch: ArchConfig, layer: Layer) -> SerialWeights:
    """The layer's weights in the machine's weight bricks (space-to-depth, depthwise diagonal, groups): every weight
    lands at one brick lane, whatever its number format."""
    index = weight_brick_index(layer, lanes=arch.lanes, rows=arch.rows,
                               space_to_depth_enabled=arch.first_layer_space_to_depth)
    flat = layer.weights.ravel()
    values = np.where(index > 0, flat[np.maximum(index - 1, 0)], flat.dtype.type(0))
    return SerialWeights(index, values)


# ----------------------------------------------------------------------------- reference path (plain Python)
def align_group_py(weights: list[float]) -> tuple[list[int], int]:
    """One float32 group aligned to its largest exponent, in plain Python: (magnitudes, exponent of column 0)."""
    exps = [max(math.frexp(abs(w))[1] - 1, FP32_MIN_EXP) for w in weights if w != 0]
    if not exps:
        return [0] * len(weights), FP32_UNIT_EXP
    e_max = max(exps)
    return [int(math.ldexp(abs(w), FP32_MANTISSA_BITS - 1 - e_max)) for w in weights], e_max - 23


def column_schedule(values: list, group: int, kept: int, fp32: bool, serial: bool = False) -> list[Cycle]:
    """Literal per-cycle schedule of one PE on one weight brick: each group's significance columns are queues of
    the lanes whose (aligned) magnitude has that bit; every cycle, every non-empty column pops one lane and the PE
    adds ``sign * 2^(column + group scale) * activation``. Coefficients are in units of 2^-149 for float32
    weights, of 1 for integers. Pruned columns (BitX: below group msb - kept + 1) get no queue.

    ``serial`` (BitX's ``column_schedule: serial``): every cycle, each group instead takes its next non-empty kept
    column, from its msb down, whole: every lane of that column is added at once."""
    if serial:
        return _serial_schedule(values, group, kept, fp32)
    columns: list[deque] = []
    for g0 in range(0, len(values), group):
        members = values[g0:g0 + group]
        mags, shift = _group_magnitudes(members, fp32)
        union = 0
        for m in mags:
            union |= m
        if union == 0:
            continue
        msb = union.bit_length() - 1
        low = max(0, msb - kept + 1) if kept > 0 else 0
        for j in range(low, msb + 1):
            queue = deque((g0 + i, (1 << (j + shift)) * (-1 if members[i] < 0 else 1))
                          for i, m in enumerate(mags) if (m >> j) & 1)
            if queue:
                columns.append(queue)
    cycles: list[Cycle] = []
    while any(columns):
        cycles.append([col.popleft() for col in columns if col])
    return cycles or [[]]


def _group_magnitudes(members: list, fp32: bool) -> tuple[list[int], int]:
    """A group's magnitudes and the shift of its column 0 (float32: aligned to the group's largest exponent, in
    units of 2^-149)."""
    if fp32:
        mags, scale = align_group_py([float(w) for w in members])
        return mags, scale - FP32_UNIT_EXP
    return [abs(int(w)) for w in members], 0


def _serial_schedule(values: list, group: int, kept: int, fp32: bool) -> list[Cycle]:
    """Column-serial schedule (see :func:`column_schedule`): per group, a queue of whole columns, msb first."""
    groups: list[deque] = []
    for g0 in range(0, len(values), group):
        members = values[g0:g0 + group]
        mags, shift = _group_magnitudes(members, fp32)
        top = max(mags).bit_length() - 1
        lowest = max(0, top - kept + 1) if kept > 0 else 0
        queue: deque = deque()
        for j in range(top, lowest - 1, -1):  # most significant column first
            column = [(g0 + i, (1 << (j + shift)) * (-1 if members[i] < 0 else 1))
                      for i, m in enumerate(mags) if (m >> j) & 1]
            if column:
                queue.append(column)
        groups.append(queue)
    cycles: list[Cycle] = []
    while any(groups):
        cycles.append([entry for queue in groups if queue for entry in queue.popleft()])
    return cycles or [[]]


# ----------------------------------------------------------------------------- the designs
class ColumnSchedule(enum.StrEnum):
    """How a group's kept significance columns are processed (BitX's ``column_schedule``)."""

    PARALLEL = "parallel"  # Bitlet's interleaving: every column pops one set bit per cycle, all columns at once
    SERIAL = "serial"  # bit-serial over significance: one whole non-empty column per cycle, from the msb down


INTERLEAVED_KNOBS = (
    SERIAL.but(default=Serial.WEIGHT, choices=(Serial.WEIGHT,)),
    ENCODING.but(default=Encoding.INTERLEAVED, choices=(Encoding.INTERLEAVED,),
                 help="weights as bit-interleaved significance columns"),
    # The paper's PE interleaves 64 weights (Bitlet-PE RTL: N_total = 64), more than a 16-lane brick holds; the
    # presets take 8 (two groups per brick). Set 16 for one group per brick.
    GROUP_SIZE.but(default=8, hi=255, help="lanes of a weight brick interleaved into one set of columns"),
    RUN_AHEAD,
)


class Bitlet(DesignModel):
    """Bitlet: every significance column of the group is processed (lossless)."""

    design = Design.BITLET
    knobs = INTERLEAVED_KNOBS
    group_axis = "lanes"

    def kept(self, arch: ArchConfig) -> int:
        """Columns kept below the group msb; 0 = all."""
        return 0

    def serial_columns(self, arch: ArchConfig) -> bool:
        """True if a group takes one whole column per cycle (BitX ``column_schedule: serial``); Bitlet: False."""
        return False

    def is_fp32(self, arch: ArchConfig, layer: Layer) -> bool:
        """True for a float32-weight layer (ConfigError if this design does not model them)."""
        fp32 = getattr(layer, "weight_format", WeightFormat.INT) == WeightFormat.FP32
        if fp32 and not self.supports_fp32_weights:
            raise ConfigError(f"layer {layer.name!r} has fp32 weights, which {arch.name} ({arch.design}) does not "
                              f"model; use an integer (quantized) layer")
        return fp32

    def _magnitudes(self, arch: ArchConfig, layer: Layer) -> tuple[SerialWeights, np.ndarray, np.ndarray]:
        """(lowered weights, magnitudes (..., groups, group_size) int64 after alignment and pruning, group
        exponents (..., groups))."""
        fp32 = self.is_fp32(arch, layer)
        sw = serial_weights(arch, layer)
        shape = (*sw.values.shape[:-1], arch.lanes // arch.group_size, arch.group_size)
        grouped = sw.values.reshape(shape)
        if fp32:
            mags, exps = align_fp32(grouped)
        else:
            mags, exps = np.abs(grouped.astype(np.int64)), np.zeros(shape[:-1], dtype=np.int64)
        return sw, prune_columns(mags, self.kept(arch)), exps

    # ----------------------------------------------------------------- brick path (integer bricks)
    def brick_stats(self, bricks: np.ndarray, op: Operand, arch: ArchConfig) -> BrickStats:
        costs = column_costs(bricks, arch.group_size, self.kept(arch), self.serial_columns(arch))
        return BrickStats(costs, np.zeros_like(costs), MODE_MAX)

    def value_cost(self, values: np.ndarray, op: Operand, arch: ArchConfig) -> np.ndarray:
        """A value alone: its bits sit in distinct columns, so one cycle if non-zero."""
        return (np.asarray(values) != 0).astype(np.int32)

    def brick_cycles(self, values: list[int], op: Operand, arch: ArchConfig) -> list[Cycle]:
        return column_schedule(values, arch.group_size, self.kept(arch), False, self.serial_columns(arch))

    # ----------------------------------------------------------------- effective weights, whole-layer hooks
    def surely_lossless(self, arch: ArchConfig, layer: Layer) -> bool:
        """Integer weights are kept whole when every column is kept, or when |w| < 2^kept_columns (a group's msb is
        then below kept_columns, so no column under it is pruned)."""
        if self.is_fp32(arch, layer):
            return False
        kept = self.kept(arch)
        return kept <= 0 or int(np.abs(layer.weights).max(initial=0)) < (1 << kept)

    def fidelity(self, arch: ArchConfig, layer, row: dict) -> dict | None:
        """Integer layers whose lane groups are consecutive channels: from the weights in place (one pass, no
        effective-weight tensor); else None (from ``effective_weights``)."""
        if (self.is_fp32(arch, layer) or self.surely_lossless(arch, layer)
                or not channels_are_bricked_in_order(layer, arch.first_layer_space_to_depth)):
            return None
        return weight_error_fields(*pruned_stats(channel_rows(layer), arch.group_size, self.kept(arch))[1:])

    def effective_weights(self, arch: ArchConfig, layer: Layer) -> np.ndarray:
        """The weights multiplied: pruned (BitX) and, for float32, aligned to each group's largest exponent."""
        if self.kept(arch) <= 0 and not self.is_fp32(arch, layer):
            return layer.weights  # every column of every integer: lossless
        sw, mags, exps = self._magnitudes(arch, layer)
        sign = np.where(sw.values.reshape(mags.shape) < 0, -1, 1)
        if layer.weight_format == WeightFormat.FP32:
            eff = (sign * np.ldexp(mags.astype(np.float64), exps[..., None])).astype(np.float32)
        else:
            eff = (sign * mags).astype(np.int32)
        out = np.zeros(layer.weights.size, dtype=eff.dtype)
        index = sw.index.ravel()
        out[index[index > 0] - 1] = eff.ravel()[index > 0]
        return out.reshape(layer.weights.shape)

    def fast_layer(self, plan: LayerPlan) -> tuple[int, int, int] | None:
        """Float32 layers only (integer layers take the engine's brick path)."""
        return self.fast_run(plan) if self.is_fp32(plan.arch, plan.layer) else None

    def fast_run(self, plan: LayerPlan) -> tuple[int, int, int]:
        """(cycles, busy PE-cycles, busy lane-cycles) from per-brick column costs, one row per unit."""
        arch, low, passes = plan.arch, plan.low, plan.passes
        _, mags, _ = self._magnitudes(arch, plan.layer)
        # pruning leaves the group's msb column, so the costs of the pruned magnitudes with every column kept are
        # the costs of the original ones with only the kept columns
        hi = column_costs(mags.reshape(-1, arch.lanes), arch.group_size, 0,
                          self.serial_columns(arch)).reshape(mags.shape[:-2])
        lo = np.zeros_like(hi)
        ch, fl = low.channels.astype(np.int64), low.filters.astype(np.int64)
        if low.is_fc:
            cyc, busy_pe, busy_lane = kernels.fc_weight_serial(
                hi[0, :, 0, 0, :], lo[0, :, 0, 0, :], MODE_MAX, 0, int(ch[0]), int(fl[0]), passes, arch.lanes,
                arch.columns, arch.rows, arch.tiles, 1)
        else:
            cyc, busy_pe, busy_lane = kernels.conv_weight_serial(
                hi, lo, MODE_MAX, 0, ch, fl, passes, low.windows, arch.lanes, arch.columns, arch.rows, arch.tiles,
                1, low.spread_tiles, arch.run_ahead, low.diagonal)
        return int(cyc), int(busy_pe), int(busy_lane)

    def ideal_and_terms(self, plan: LayerPlan) -> tuple[float, int]:
        """Ideal: one cycle per non-zero weight's MAC (a value alone fills distinct columns), or with serial
        columns one cycle per term (a value alone takes one column per set bit); terms: the set bits the columns
        actually consume (after alignment and pruning), over every MAC."""
        arch, layer = plan.arch, plan.layer
        oh, ow = layer.output_hw
        if not self.is_fp32(arch, layer) and channels_are_bricked_in_order(layer, arch.first_layer_space_to_depth):
            terms = pruned_stats(channel_rows(layer), arch.group_size, self.kept(arch))[0] * oh * ow
        else:
            _, mags, _ = self._magnitudes(arch, layer)
            terms = _popcount(mags) * oh * ow
        if self.serial_columns(arch):
            return float(terms), terms
        return float(np.count_nonzero(layer.weights) * oh * ow), terms

    def reference_layer(self, plan: LayerPlan) -> tuple[int, np.ndarray] | None:
        """Float32 layers only: (cycles, partial sums as float64, the exact sums rounded once)."""
        if not self.is_fp32(plan.arch, plan.layer):
            return None
        cycles, psum, unit = self.reference_exact(plan)
        flat = [math.ldexp(float(v), unit) for v in psum.ravel()]
        return cycles, np.array(flat, dtype=np.float64).reshape(psum.shape)

    def reference_exact(self, plan: LayerPlan) -> tuple[int, np.ndarray, int]:
        """Cycle-by-cycle run: (cycles, partial sums (G, Kg, windows) as Python ints, unit exponent): the
        accumulators are ``psum * 2^unit`` exactly (unit -149 for float32 weights, 0 for integers)."""
        arch, layer, low, passes = plan.arch, plan.layer, plan.low, plan.passes
        fp32, serial = self.is_fp32(arch, layer), self.serial_columns(arch)
        kept, group = self.kept(arch), arch.group_size
        lanes, rows, cols, tiles = arch.lanes, arch.rows, arch.columns, arch.tiles
        values = serial_weights(arch, layer).values  # (G, Kg, R, S, CB, lanes)
        acts = low.acts
        n_sub, kg = values.shape[:2]
        psum = np.zeros((n_sub, kg, low.windows), dtype=object)
        psum[...] = 0
        n_cb = values.shape[4]
        taps = [(r, s, cb) for r in range(values.shape[2]) for s in range(values.shape[3]) for cb in range(n_cb)]

        def schedule_of(g: int, f: int, r: int, s: int, cb: int) -> list[Cycle]:
            return column_schedule(values[g, f, r, s, cb].tolist(), group, kept, fp32, serial)

        def act(g: int, ch: int, y: int, x: int) -> int:
            return int(acts[g, ch, y, x]) if ch < acts.shape[1] else 0

        if low.is_fc:
            steps = [(p, cb) for p in range(passes) for (_, _, cb) in taps]

            def units_of(i: int):
                p, cb = steps[i]
                out = []
                for f in range(p * tiles * rows, min((p + 1) * tiles * rows, int(low.filters[0]))):
                    def apply(cycle: Cycle, f=f, cb=cb) -> None:
                        for lane, coeff in cycle:
                            psum[0, f, 0] += coeff * act(0, cb * lanes + lane, 0, 0)

                    out.append((schedule_of(0, f, 0, 0, cb), apply))
                return out

            cycles = run_column_pipeline(len(steps), cols, units_of)
            return cycles, psum, FP32_UNIT_EXP if fp32 else 0

        spread = low.spread_tiles
        n_ws = -(-low.windows // cols)
        n_batches = n_sub if spread == 1 else -(-n_sub // spread)
        steps = [(b, ws, p, t) for b in range(n_batches) for ws in range(n_ws) for p in range(passes) for t in taps]

        def filter_of(i: int, u: int) -> tuple[int, int] | None:
            """(sub-conv, filter) of row unit u = tile * rows + row at step i, or None if it holds no filter."""
            b, _, p, _ = steps[i]
            tile, row = divmod(u, rows)
            g, fset = (b, p * tiles + tile) if spread == 1 else (b * spread + tile, p)
            f = fset * rows + row
            if g >= n_sub or f >= int(low.filters[g]):
                return None
            return g, f

        def schedule(i: int, u: int) -> list[Cycle] | None:
            where = filter_of(i, u)
            if where is None:
                return None
            r, s, cb = steps[i][3]
            return schedule_of(where[0], where[1], r, s, cb)

        def on_cycle(i: int, u: int, cycle: Cycle) -> None:
            g, f = filter_of(i, u)
            _, ws, _, (r, s, cb) = steps[i]
            for lane, coeff in cycle:
                ch = cb * lanes + lane
                for w in range(ws * cols, min((ws + 1) * cols, low.windows)):
                    y, x = (w // low.out_w) * low.stride + r, (w % low.out_w) * low.stride + s
                    psum[g, f, w] += coeff * act(g, ch, y, x)

        cycles = run_synchronized(len(steps), tiles * rows, arch.run_ahead, schedule, on_cycle)
        return cycles, psum, FP32_UNIT_EXP if fp32 else 0

    # ----------------------------------------------------------------- hardware
    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Per lane a selector over the group's activations (the distiller) and the activation ANDed with one
        weight bit; per PE the tree, a shifter to the column's significance and the accumulator."""
        w, lanes, pes = arch.pe_width, arch.lanes, arch.pes
        return (hw.mux("lane distiller multiplexers", pes * lanes, w, arch.group_size, "busy_lane_cycles")
                + hw.lane_and_gates(arch, w)
                + hw.adder_tree("adder trees", pes, lanes, w)
                + hw.shifter("significance shifters", pes, w + hw.log2_ceil(lanes), 2 * w, "busy_pe_cycles")
                + hw.accumulators(pes, hw.acc_bits(w)))


class BitX(Bitlet):
    """BitX: Bitlet's columns with run-time pruning of the columns below group msb - kept_columns + 1; models
    float32 weights (aligned per group)."""

    design = Design.BITX
    knobs = (*INTERLEAVED_KNOBS,
             # The sources we could reach do not give the paper's k; 8 keeps int8 layers lossless (|w| <= 128 spans 8
             # columns) and prunes 16-bit and float32 groups (8 of the 24 aligned mantissa columns).
             Knob("kept_columns", int, 8, "significance columns kept from the group's msb down (k)", 1, 32),
             # The abstract does not say how the kept columns are processed. parallel: Bitlet's PE (the design BitX
             # builds on); serial: one column per cycle, msb first, so that pruning k of 24 columns cuts the cycles
             # about 24/k (the reading under which the published "up to 4.82x over the non-pruned DNN" is reached,
             # docs/models.md).
             Knob("column_schedule", ColumnSchedule, ColumnSchedule.PARALLEL,
                  "kept columns: parallel (Bitlet: a group costs its largest column popcount) or serial (a group "
                  "costs its number of non-empty kept columns)"))
    supports_fp32_weights = True

    def kept(self, arch: ArchConfig) -> int:
        return arch.kept_columns

    def serial_columns(self, arch: ArchConfig) -> bool:
        return arch.column_schedule == ColumnSchedule.SERIAL

    def parts(self, arch: ArchConfig) -> list[hw.Part]:
        """Bitlet's datapath plus, per weight brick read, each group's leading-one detection (the pruning bound) and
        the float32 exponent alignment (an 8-bit exponent subtraction per lane)."""
        rows = arch.tiles * arch.rows
        return (super().parts(arch) + hw.precision_detectors(arch, rows, "weight_brick_reads")
                + [hw.Part("exponent alignment", "adder", 8, rows * arch.lanes, "add", "weight_brick_reads",
                           arch.lanes)])
