"""An independent, deliberately naive model of the machine (docs/design.md §3-4, §6), for closed-form tests.

Written from docs/design.md's rules in plain Python / numpy, without the simulator's own helpers (no ``plan_layer``,
``lower``, ``kernels``, ``workloads.bits``): its own lowering (space-to-depth, groups, depthwise, GEMM, FC), its
own term encodings and cost rules, and a literal walk over every (batch, window set, pass, step, PE). Only for
small layers: it loops in Python over every PE of every step.

Counters (``simulator/results.py``, docs/design.md §6, ``simulator/engine.py::_row``), as this model defines them:

- ``busy_pe_cycles``: sum over steps and over the PEs that hold a real window and a real filter of the cycles
  their unit spends on the step (a column group's activation bricks, a row group's weight bricks, or the PE's own
  pair when both operands are serial). ``pe_utilization`` = busy_pe_cycles / (cycles * PEs).
- ``busy_lane_cycles``: the same, times the lanes of the PE that hold a real input channel (zero-padded lanes at
  the end of the channel range are idle; a depthwise PE has one useful lane, its diagonal one); a lane-wise
  both-serial design (Laconic) counts each useful lane for its own term pairs, max(1, t(a) t(w)).
  ``idle_lane_cycles`` = cycles * chip lanes - busy; ``lane_utilization`` = busy / (cycles * chip lanes).
- ``act_brick_reads``: one per activation brick a column reads: per pass, per step, per real window (of every
  sub-convolution). An FC layer has one window: passes * steps.
- ``weight_brick_reads``: one per weight brick a row reads: per window set, per step, per real filter.
- ``psum_writes``: conv: one per output (window x real filter: a PE accumulates all its steps before writing);
  FC: every column that ran some step of a filter writes that filter's partial sum: K * min(columns, steps).
- ``ideal_cycles``: sum over the layer's own MACs (before any space-to-depth rewrite; padding positions are
  zero activations) of what the MAC costs alone under the design's encoding, / chip lanes.
- ``terms``: sum over the layer's MACs of the serial operand's effectual terms (binary terms for fixed / dynamic
  precision; the product of both operands' terms when both are serial; one per MAC for the bit-parallel design).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

PE_WIDTH = 16


# ----------------------------------------------------------------------------- terms and widths of one value
def binary_mask(n: int) -> int:
    return abs(int(n))


def booth_mask(n: int) -> int:
    """DNNsim's Booth-like recoding of |n| (docs/design.md §4): a 16-bit mask of term positions."""
    n = abs(int(n))
    x = n << 2
    bits = [(x >> (17 - j)) & 1 for j in range(18)]  # the 18-bit string, most significant first
    mask, in_run = 0, False
    for i in range(16):
        window = (bits[i], bits[i + 1], bits[i + 2])
        mask <<= 1
        if window in ((0, 1, 0), (0, 1, 1)):
            if in_run:
                mask |= 1
        elif window == (1, 0, 0):
            mask |= 1
            in_run = False
        elif window in ((1, 0, 1), (1, 1, 0)):
            if not in_run:
                mask |= 1
        elif window == (1, 1, 1):
            if not in_run:
                mask |= 2
                in_run = True
    return mask & 0xFFFF


def csd_mask(n: int) -> int:
    """Canonical signed digit (non-adjacent form) of |n|: positions of its non-zero digits."""
    n, mask, i = abs(int(n)), 0, 0
    while n:
        if n & 1:
            digit = 2 - (n & 3)  # +1 or -1
            mask |= 1 << i
            n -= digit
        n >>= 1
        i += 1
    return mask


MASKS = {"binary": binary_mask, "booth": booth_mask, "csd": csd_mask}


@functools.cache
def terms(v: int, encoding: str = "binary") -> int:
    """Non-zero terms of |v| under ``encoding``."""
    return bin(MASKS[encoding](v)).count("1")


def msb(x: int) -> int:
    """Index of the highest set bit of x >= 0; -1 for 0."""
    return int(x).bit_length() - 1


def lsb(x: int) -> int:
    x = abs(int(x))
    return (x & -x).bit_length() - 1


def magnitude_for_width(v: int) -> int:
    """v, or ~v for negative v (the two's complement width rule)."""
    v = int(v)
    return v if v >= 0 else ~v


def pra(values, first_stage_bits: int, encoding: str) -> int:
    """PRA(|values|, B) of docs/design.md §4, literally, on the values' term positions."""
    return _pra(tuple(values), first_stage_bits, encoding)


@functools.cache
def _pra(values, first_stage_bits, encoding):
    masks = [MASKS[encoding](v) for v in values]
    reach = (1 << first_stage_bits) - 1
    cycles = 0
    while any(masks):
        o = min(lsb(m) for m in masks if m)
        masks = [m & (m - 1) if m and lsb(m) <= o + reach else m for m in masks]
        cycles += 1
    return max(cycles, 1)


def detected_width(values, signed: bool, minor_bit: bool = False) -> int:
    """Dynamic Stripes / Loom: max msb + 1 over the values (v or ~v), minus the lowest set bit with ``minor_bit``,
    +1 if signed; a group whose every v (or ~v) is zero costs 1 (+1)."""
    top = max(msb(magnitude_for_width(v)) for v in values)
    extra = int(signed)
    if top < 0:
        return 1 + extra
    nonzero = [v for v in values if v]
    low = min(lsb(v) for v in nonzero) if (minor_bit and nonzero) else 0
    return max(1, top - low + 1 + extra)


def value_width(v: int, signed: bool, minor_bit: bool = False) -> int:
    """The precision of one value alone (the ideal work of Dynamic Stripes): 0 for a zero."""
    if v == 0:
        return 0
    w = msb(magnitude_for_width(v)) + 1 + int(signed)
    if minor_bit:
        w -= lsb(v)
    return max(1, w)


# ----------------------------------------------------------------------------- designs, as cost rules
@dataclass
class Model:
    """What the tests need to know of a design: its serial operand and cost rules (docs/design.md §4's table)."""

    serial: str  # none | activation | weight | both
    unit_cost: object = None  # brick-path designs: cost of a unit from its members' bricks (list of lists)
    pe_cost: object = None  # both-serial designs: cost of one PE on one brick pair
    lane_busy: object = None  # both-serial lane-wise designs: busy cycles of one lane on one pair (a, w)
    mac_cost: object = None  # what one MAC (a, w) costs alone: the ideal work
    mac_terms: object = None  # effectual terms of one MAC (a, w)


def design_model(design: str, layer, **knobs) -> Model:
    """The test's own reading of ``design`` with ``knobs`` on ``layer`` (its precisions and signs)."""
    a_signed, w_signed = layer.act_signed, layer.weight_signed
    ab, wb = layer.act_bits, layer.weight_bits
    if design == "dadiannao":
        return Model("none", lambda bricks: 1, mac_cost=lambda a, w: 1, mac_terms=lambda a, w: 1)
    if design == "stripes":
        bits = min(ab, PE_WIDTH)
        return Model("activation", lambda bricks: bits, mac_cost=lambda a, w: bits,
                     mac_terms=lambda a, w: terms(a))
    if design == "dynamic_stripes":
        minor = knobs.get("minor_bit", False)
        return Model("activation", lambda bricks: detected_width([v for b in bricks for v in b], a_signed, minor),
                     mac_cost=lambda a, w: value_width(a, a_signed, minor), mac_terms=lambda a, w: terms(a))
    if design in ("pragmatic", "weight_serial"):
        serial = knobs.get("serial", "activation" if design == "pragmatic" else "weight")
        enc = knobs.get("encoding", "booth" if design == "pragmatic" else "binary")
        b = knobs.get("first_stage_bits", 2 if design == "pragmatic" else 0)
        skip = design == "weight_serial" and knobs.get("skip_zero_weights", True)

        def unit(bricks):
            if skip and not any(v for br in bricks for v in br):
                return 0  # an all-zero weight brick costs no cycle
            return max(pra(br, b, enc) for br in bricks)  # members side by side

        pick = (lambda a, w: w) if serial == "weight" else (lambda a, w: a)
        return Model(serial, unit, mac_cost=lambda a, w: terms(pick(a, w), enc),
                     mac_terms=lambda a, w: terms(pick(a, w), enc))
    if design == "loom":
        sb, dyn = knobs.get("serial_bits", 1), knobs.get("dynamic_weights", False)

        def pe(abrick, wbrick):
            wcost = detected_width(wbrick, w_signed) if dyn else wb
            return math.ceil(detected_width(abrick, a_signed) / sb) * wcost

        def mac(a, w):  # Loom's own per-value costs (pair_value_costs): a zero activation costs 1 chunk
            ca = math.ceil(max(value_width(a, a_signed), 1) / sb)
            return ca * (value_width(w, w_signed) if dyn else wb)

        return Model("both", pe_cost=pe, mac_cost=mac, mac_terms=lambda a, w: terms(a) * terms(w))
    if design == "laconic":
        enc = knobs.get("encoding", "booth")

        def pair(a, w):
            return terms(a, enc) * terms(w, enc)

        return Model("both", pe_cost=lambda ab_, wb_: max(max(1, pair(a, w)) for a, w in zip(ab_, wb_)),
                     lane_busy=lambda a, w: max(1, pair(a, w)), mac_cost=pair, mac_terms=pair)
    raise ValueError(design)


# ----------------------------------------------------------------------------- the machine's view of a layer
@dataclass
class Sub:
    """One sub-convolution: padded input channels (Cg, Hp, Wp), weights (Kg, Cg, R, S); depthwise: diagonal."""

    acts: np.ndarray
    weights: np.ndarray
    diagonal: bool = False


@dataclass
class Lowering:
    subs: list
    stride: int
    out_h: int
    out_w: int
    fc: bool = False
    spread: bool = False


def space_to_depth(acts, weights, padding, s):
    """docs/design.md §3: after padding, (c, h, w) -> channel ((h mod s) s + w mod s) 3 + c at (h div s, w div s); taps
    alike, kernel ceil(R/s) x ceil(S/s)."""
    pt, pb, pl, pr = padding
    a = np.pad(acts, ((0, 0), (pt, pb), (pl, pr)))
    c, h, w = a.shape
    out = np.zeros((s * s * c, -(-h // s), -(-w // s)), dtype=np.int64)
    for ci in range(c):
        for y in range(h):
            for x in range(w):
                out[((y % s) * s + x % s) * c + ci, y // s, x // s] = a[ci, y, x]
    k, _, r, sk = weights.shape
    wout = np.zeros((k, s * s * c, -(-r // s), -(-sk // s)), dtype=np.int64)
    for ci in range(c):
        for y in range(r):
            for x in range(sk):
                wout[:, ((y % s) * s + x % s) * c + ci, y // s, x // s] = weights[:, ci, y, x]
    return out, wout


def lower(layer, lanes: int, rows: int, space_to_depth_on: bool = True, spread: bool = False) -> Lowering:
    kind = str(layer.kind)
    if kind == "fc":
        return Lowering([Sub(layer.activations.reshape(-1, 1, 1), layer.weights.reshape(*layer.weights.shape, 1, 1))],
                        1, 1, 1, fc=True)
    if kind == "gemm":  # tokens are windows: a 1x1 conv over (C, T, 1)
        t = layer.activations.shape[0]
        return Lowering([Sub(layer.activations.T.reshape(-1, t, 1), layer.weights.reshape(*layer.weights.shape, 1, 1))],
                        1, t, 1)
    oh, ow = layer.output_hw
    c, k = layer.in_channels, layer.out_channels
    if space_to_depth_on and layer.groups == 1 and c == 3 and layer.stride > 1:
        a, w = space_to_depth(layer.activations, layer.weights, layer.padding, layer.stride)
        return Lowering([Sub(a, w)], 1, oh, ow)
    pt, pb, pl, pr = layer.padding
    a = np.pad(layer.activations, ((0, 0), (pt, pb), (pl, pr)))
    if layer.groups > 1 and layer.groups == c == k:  # depthwise, DNNsim's mapping
        m = min(lanes, rows)
        subs = []
        for c0 in range(0, c, m):
            n = min(m, c - c0)
            w = np.zeros((n, n, *layer.weights.shape[2:]), dtype=np.int64)
            for i in range(n):
                w[i, i] = layer.weights[c0 + i, 0]
            subs.append(Sub(a[c0:c0 + n], w, diagonal=True))
        return Lowering(subs, layer.stride, oh, ow, spread=spread)
    g = layer.groups
    cg, kg = c // g, k // g
    return Lowering([Sub(a[i * cg:(i + 1) * cg], layer.weights[i * kg:(i + 1) * kg]) for i in range(g)],
                    layer.stride, oh, ow)


def brick(vector, cb: int, lanes: int) -> list:
    out = [0] * lanes
    part = [int(v) for v in vector[cb * lanes:(cb + 1) * lanes]]
    out[:len(part)] = part
    return out


# ----------------------------------------------------------------------------- the walk
@dataclass
class Counts:
    cycles: int = 0
    busy_pe: int = 0
    busy_lane: int = 0
    act_reads: int = 0
    weight_reads: int = 0
    psum_writes: int = 0


def fc_pipeline(costs, columns: int) -> int:
    """docs/design.md §3's FC column pipeline; steps costing 0 (skipped work) are not issued."""
    busy = [0] * columns
    clk = issued = 0
    for k in costs:
        if k == 0:
            continue
        c = issued % columns
        issued += 1
        clk = max(clk, busy[c])
        busy[c] = clk + k
        clk += 1
    return max(busy)


def walk(model: Model, low: Lowering, *, tiles: int, rows: int, columns: int, lanes: int, group: int = 1) -> Counts:
    """Every step of every (batch, window set, pass) with its active PEs; lockstep (no run-ahead)."""
    out = Counts()
    kg_max = max(sub.weights.shape[0] for sub in low.subs)
    cg = max(sub.acts.shape[0] for sub in low.subs) if not low.subs[0].diagonal else min(lanes, rows)
    n_cb = -(-cg // lanes)
    kr, ks = low.subs[0].weights.shape[2:]
    taps = [(r, s, cb) for r in range(kr) for s in range(ks) for cb in range(n_cb)]
    windows = low.out_h * low.out_w
    if low.spread:
        batches = [[low.subs[i] for i in range(b, min(b + tiles, len(low.subs)))]
                   for b in range(0, len(low.subs), tiles)]
        passes = 1
    else:
        batches = [[sub] for sub in low.subs]
        passes = math.ceil(math.ceil(kg_max / rows) / tiles)

    def held(batch, p, t):
        """(sub, first filter, end filter) of tile t in pass p."""
        if low.spread:
            if t >= len(batch):
                return None, 0, 0
            sub, fset = batch[t], p
        else:
            sub, fset = batch[0], p * tiles + t
        return sub, fset * rows, min((fset + 1) * rows, sub.weights.shape[0])

    def used(sub, cb):
        return 1 if sub.diagonal else max(0, min(lanes, sub.acts.shape[0] - cb * lanes))

    def act_brick(sub, win, r, s, cb):
        y, x = (win // low.out_w) * low.stride + r, (win % low.out_w) * low.stride + s
        return brick(sub.acts[:, y, x], cb, lanes)

    def weight_brick(sub, f, r, s, cb):
        return brick(sub.weights[f, :, r, s], cb, lanes)

    if low.fc:
        sub = low.subs[0]
        costs = []
        for p in range(passes):
            f_lo, f_hi = p * tiles * rows, min((p + 1) * tiles * rows, sub.weights.shape[0])
            for (_, _, cb) in taps:
                if model.serial in ("none", "activation"):
                    k = model.unit_cost([act_brick(sub, 0, 0, 0, cb)])
                    unit_costs = [(k, f_hi - f_lo)]
                    lane_busy = k * (f_hi - f_lo) * used(sub, cb)
                elif model.serial == "weight":
                    unit_costs = []
                    for t in range(tiles):
                        for g0 in range(0, rows, group):
                            fs = range(max(f_lo, (p * tiles + t) * rows + g0),
                                       min(f_hi, (p * tiles + t) * rows + g0 + group))
                            if len(fs):
                                unit_costs.append((model.unit_cost([weight_brick(sub, f, 0, 0, cb) for f in fs]),
                                                   len(fs)))
                    lane_busy = sum(k * n for k, n in unit_costs) * used(sub, cb)
                else:
                    ab = act_brick(sub, 0, 0, 0, cb)
                    unit_costs, lane_busy = [], 0
                    for f in range(f_lo, f_hi):
                        wbk = weight_brick(sub, f, 0, 0, cb)
                        k = model.pe_cost(ab, wbk)
                        unit_costs.append((k, 1))
                        lane_busy += (sum(model.lane_busy(a, w) for a, w in zip(ab[:used(sub, cb)],
                                                                                 wbk[:used(sub, cb)]))
                                      if model.lane_busy else k * used(sub, cb))
                costs.append(max((k for k, _ in unit_costs), default=0))
                out.busy_pe += sum(k * n for k, n in unit_costs)
                out.busy_lane += lane_busy
        out.cycles = fc_pipeline(costs, columns)
        k_real = sub.weights.shape[0]
        out.act_reads = passes * len(taps)
        out.weight_reads = len(taps) * k_real
        out.psum_writes = k_real * min(columns, len(taps))
        return out

    for batch in batches:
        for ws in range(-(-windows // columns)):
            wins = list(range(ws * columns, min((ws + 1) * columns, windows)))
            for p in range(passes):
                held_now = [held(batch, p, t) for t in range(tiles)]
                active = [(sub, range(f_lo, f_hi)) for sub, f_lo, f_hi in held_now if sub is not None and f_hi > f_lo]
                # the columns' activation bricks: shared by every tile, or one sub-conv per tile ('spread')
                readers = len(active) if low.spread else 1
                out.act_reads += readers * len(wins) * len(taps)
                out.weight_reads += sum(len(fs) for _, fs in active) * len(taps)
                out.psum_writes += sum(len(fs) for _, fs in active) * len(wins)
                for (r, s, cb) in taps:
                    units = []  # (cost, busy PE-cycles, busy lane-cycles) of every active unit of the step
                    for sub, filters in active:
                        if model.serial in ("none", "activation"):
                            for c0 in range(0, len(wins), group):
                                cols = wins[c0:c0 + group]
                                k = model.unit_cost([act_brick(sub, w, r, s, cb) for w in cols])
                                n_pe = len(cols) * len(filters)
                                units.append((k, k * n_pe, k * n_pe * used(sub, cb)))
                        elif model.serial == "weight":
                            for g0 in range(filters.start, filters.stop, group):
                                fs = range(g0, min(g0 + group, filters.stop))
                                k = model.unit_cost([weight_brick(sub, f, r, s, cb) for f in fs])
                                n_pe = len(fs) * len(wins)
                                units.append((k, k * n_pe, k * n_pe * used(sub, cb)))
                        else:
                            for f in filters:
                                wbk = weight_brick(sub, f, r, s, cb)
                                # a depthwise PE's useful lane is its filter's own channel (cb = 0)
                                lanes_of = [f] if sub.diagonal else range(used(sub, cb))
                                for w in wins:
                                    abk = act_brick(sub, w, r, s, cb)
                                    k = model.pe_cost(abk, wbk)
                                    lb = (sum(model.lane_busy(abk[i], wbk[i]) for i in lanes_of) if model.lane_busy
                                          else k * len(lanes_of))
                                    units.append((k, k, lb))
                    out.cycles += max((k for k, _, _ in units), default=0)
                    out.busy_pe += sum(b for _, b, _ in units)
                    out.busy_lane += sum(b for _, _, b in units)
    return out



# ----------------------------------------------------------------------------- ideal work and terms
def layer_macs(layer):
    """Every MAC of the layer as it is written (no rewrite): yields (activation, weight); padding positions give
    zero activations."""
    kind = str(layer.kind)
    if kind == "fc":
        for k in range(layer.out_channels):
            for c in range(layer.in_channels):
                yield int(layer.activations[c]), int(layer.weights[k, c])
        return
    if kind == "gemm":
        for t in range(layer.activations.shape[0]):
            for k in range(layer.out_channels):
                for c in range(layer.in_channels):
                    yield int(layer.activations[t, c]), int(layer.weights[k, c])
        return
    pt, pb, pl, pr = layer.padding
    a = np.pad(layer.activations, ((0, 0), (pt, pb), (pl, pr)))
    kk, cg, kr, ks = layer.weights.shape
    kg = kk // layer.groups
    oh, ow = layer.output_hw
    st = layer.stride
    for k in range(kk):
        g = k // kg
        for oy in range(oh):
            for ox in range(ow):
                for c in range(cg):
                    for r in range(kr):
                        for s in range(ks):
                            yield int(a[g * cg + c, oy * st + r, ox * st + s]), int(layer.weights[k, c, r, s])


def ideal_and_terms(model: Model, layer) -> tuple[int, int]:
    """(ideal work in lane-cycles, terms): sums over the layer's MACs, with a cache per distinct pair."""
    cost, term = {}, {}
    work = total = 0
    for pair in layer_macs(layer):
        if pair not in cost:
            cost[pair], term[pair] = model.mac_cost(*pair), model.mac_terms(*pair)
        work += cost[pair]
        total += term[pair]
    return work, total


def expected_row(design: str, layer, *, tiles: int, rows: int, columns: int, lanes: int, group: int = 1,
                 space_to_depth_on: bool = True, spread: bool = False, **knobs) -> dict:
    """Every results column the tests check, from this module's own model."""
    model = design_model(design, layer, **knobs)
    low = lower(layer, lanes, rows, space_to_depth_on, spread)
    c = walk(model, low, tiles=tiles, rows=rows, columns=columns, lanes=lanes, group=group)
    work, total = ideal_and_terms(model, layer)
    chip_lanes = tiles * rows * columns * lanes
    pes = tiles * rows * columns
    return {
        "cycles": c.cycles, "act_brick_reads": c.act_reads, "weight_brick_reads": c.weight_reads,
        "psum_writes": c.psum_writes, "busy_lane_cycles": c.busy_lane,
        "idle_lane_cycles": c.cycles * chip_lanes - c.busy_lane,
        "pe_utilization": c.busy_pe / (c.cycles * pes) if c.cycles else 0.0,
        "lane_utilization": c.busy_lane / (c.cycles * chip_lanes) if c.cycles else 0.0,
        "ideal_cycles": work / chip_lanes, "terms": total,
    }
