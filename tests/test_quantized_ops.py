"""workloads.quantized_ops' batched fast paths (float32 BLAS accumulation, the numba im2col / depthwise /
requantization kernels) against plain int64 arithmetic: bit for bit, whatever the accumulation type."""

from __future__ import annotations

import numpy as np
import pytest

from workloads import quantized_ops as q

F32, F64, I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)


def _direct_conv(x, w, stride, pads, depthwise=False, multiplier=1):
    """Σ x·w by loops over the output (x (N, H, W, C) centred ints; w (K, R, S, C), or (R, S, C·m) depthwise)."""
    x = np.asarray(x, np.int64)
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n = x.shape[0]
    r, s = (w.shape[0], w.shape[1]) if depthwise else (w.shape[1], w.shape[2])
    oh, ow = q.conv_output_hw(x.shape[1], x.shape[2], r, s, stride, pads)
    k = w.shape[2] if depthwise else w.shape[0]
    out = np.zeros((n, oh, ow, k), np.int64)
    for y in range(oh):
        for xx in range(ow):
            win = xp[:, y * stride[0]:y * stride[0] + r, xx * stride[1]:xx * stride[1] + s]  # (N, R, S, C)
            if depthwise:
                out[:, y, xx] = (np.repeat(win, multiplier, axis=3) * w).sum(axis=(1, 2))
            else:
                out[:, y, xx] = np.einsum("nrsc,krsc->nk", win, w)
    return out


def _quantized(rng, dtype, shape):
    lo, hi = q.QRANGE[dtype]
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def test_accumulator_dtype_and_bounds():
    assert q.accumulator_dtype(2**24 - 1) == F32 and q.accumulator_dtype(2**24) == F64
    assert q.accumulator_dtype(2**53 - 1) == F64 and q.accumulator_dtype(2**53) == I64
    assert q.input_bound("uint8", 0) == 255 and q.input_bound("int8", -128) == 255 and q.input_bound("int8", 0) == 128
    w = np.full((4, 3, 3, 8), 255)  # Σ|w| = 18360 per output channel
    assert q.prepare_weights(w, x_bound=255).dtype == F32  # 4.7 M
    assert q.prepare_weights(w, x_bound=1024).dtype == F64  # 18.8 M >= 2^24
    assert q.prepare_weights(w, np.array([2**24]), x_bound=1).dtype == F64  # the bias counts
    assert q.prepare_weights(w, x_bound=2.0**50).dtype == I64


@pytest.mark.parametrize("dtype,zp", [("uint8", 0), ("uint8", 131), ("int8", -128), ("int8", 5)])
@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, "SAME"), (3, 2, "SAME"), (1, 2, "SAME"), (2, 1, "VALID"),
                                                    (3, 2, "VALID"), (1, 1, "VALID")])
def test_conv_every_accumulation_type_is_exact(dtype, zp, kernel, stride, padding):
    rng = np.random.default_rng(kernel * 10 + stride)
    x_q = _quantized(rng, dtype, (3, 9, 8, 5))
    w = rng.integers(-255, 256, (6, kernel, kernel, 5))
    bias = rng.integers(-(2**20), 2**20, 6)
    pads = q.padding_2d(padding, 9, 8, kernel, kernel, stride, stride)
    want = _direct_conv(x_q.astype(np.int64) - zp, w, (stride, stride), pads) + bias
    bound = q.input_bound(dtype, zp)
    for x_bound, dt in ((bound, F32), (2.0**26, F64), (2.0**50, I64)):
        cw = q.prepare_weights(w, bias, x_bound=x_bound)
        assert cw.dtype == dt
        got = q.conv_nhwc(x_q, zp, cw, (stride, stride), pads)
        assert got.dtype == dt
        np.testing.assert_array_equal(got.astype(np.int64), want)
        no_bias = q.conv_nhwc(x_q, zp, cw, (stride, stride), pads, add_bias=False)
        np.testing.assert_array_equal(no_bias.astype(np.int64), want - bias)
    # the single-image API on centred values
    np.testing.assert_array_equal(q.conv_accumulators(x_q[1].astype(np.int64) - zp, w, (stride, stride), pads),
                                  want[1] - bias)


@pytest.mark.parametrize("dtype,zp", [("uint8", 0), ("uint8", 77), ("int8", -128), ("int8", 3)])
@pytest.mark.parametrize("stride,multiplier", [(1, 1), (2, 1), (1, 2), (2, 3)])
def test_depthwise_kernel_matches_int64(dtype, zp, stride, multiplier):
    rng = np.random.default_rng(stride * 7 + multiplier)
    c = 5
    x_q = _quantized(rng, dtype, (2, 10, 7, c))
    w = rng.integers(-255, 256, (3, 3, c * multiplier))
    bias = rng.integers(-(2**20), 2**20, c * multiplier)
    for padding in ("SAME", "VALID"):
        pads = q.padding_2d(padding, 10, 7, 3, 3, stride, stride)
        want = _direct_conv(x_q.astype(np.int64) - zp, w, (stride, stride), pads, True, multiplier) + bias
        for x_bound, dt in ((q.input_bound(dtype, zp), F32), (2.0**26, F64), (2.0**50, I64)):
            cw = q.prepare_weights(w, bias, x_bound=x_bound, depthwise=True, depth_multiplier=multiplier)
            assert cw.dtype == dt
            got = q.depthwise_nhwc(x_q, zp, cw, (stride, stride), pads)  # float32: the numba kernel
            np.testing.assert_array_equal(got.astype(np.int64), want)
            no_bias = q.depthwise_nhwc(x_q, zp, cw, (stride, stride), pads, add_bias=False)
            np.testing.assert_array_equal(no_bias.astype(np.int64), want - bias)
        got = q.depthwise_accumulators(x_q[0].astype(np.int64) - zp, w, (stride, stride), pads, multiplier)
        np.testing.assert_array_equal(got, want[0] - bias)


def test_fc_and_the_float32_edge():
    rng = np.random.default_rng(3)
    x_q = _quantized(rng, "int8", (7, 64))
    w = rng.integers(-127, 128, (10, 64))
    bias = rng.integers(-5000, 5000, 10)
    want = (x_q.astype(np.int64) + 128) @ w.T + bias
    for x_bound in (255, 2.0**26, 2.0**50):
        np.testing.assert_array_equal(q.fc_nhwc(x_q, -128, q.prepare_weights(w, bias, x_bound=x_bound)), want)
    np.testing.assert_array_equal(q.fc_accumulators(x_q.astype(np.int64) + 128, w), want - bias)
    # sums just below 2^24 stay exact in float32; just above, the bound moves them to float64
    x = np.full((1, 2), 255, np.uint8)
    for weight, dt in ((32896, F32), (32897, F64)):  # 2 · 255 · 32896 = 2^24 - 256
        cw = q.prepare_weights(np.full((1, 2), weight), np.array([255]), x_bound=255)
        assert cw.dtype == dt
        assert int(q.fc_nhwc(x, 0, cw)[0, 0]) == 2 * 255 * weight + 255


@pytest.mark.parametrize("out_dtype,zp,lo,hi", [("uint8", 0, 0, 255), ("uint8", 12, 12, 130), ("int8", -5, -128, 127),
                                                 ("int8", 24, -128, 127)])
def test_fused_requantization_matches_numpy(out_dtype, zp, lo, hi):
    rng = np.random.default_rng(abs(zp))
    acc = rng.integers(-(2**22), 2**22, (300, 8)).astype(np.float32)
    bias = rng.integers(-(2**20), 2**20, 8).astype(np.float32)
    acc[:8] = np.arange(-8, 8, 2)[:, None] * 2.0**10 + 512 - bias  # ties (x.5) once scaled by 2^-10
    for scale in (np.float32(2.0**-10), (rng.random(8) * 0.01).astype(np.float32)):
        want = q.requantize((acc + bias).astype(np.int64), None, None, zp, lo, hi, rounding="fp32", scale=scale)
        got = q.requantize_fp32(acc, scale, zp, lo, hi, bias=bias, out_dtype=out_dtype)
        assert got.dtype == np.dtype(out_dtype)
        np.testing.assert_array_equal(got.astype(np.int64), want)
        # float64 accumulators (large bounds) go the numpy way, with the same result
        np.testing.assert_array_equal(q.requantize_fp32(acc.astype(np.float64), scale, zp, lo, hi,
                                                        bias=bias.astype(np.float64), out_dtype=out_dtype), want)
        np.testing.assert_array_equal(q.requantize(acc + bias, None, None, zp, lo, hi, rounding="fp32", scale=scale,
                                                   out_dtype=out_dtype), want)


@pytest.mark.parametrize("d1,zp1,d2,zp2,out", [("uint8", 0, "uint8", 133, "uint8"), ("int8", -128, "int8", 7, "int8"),
                                              ("int8", 30, "int8", -3, "int8")])
def test_xnnpack_add_kernel_matches_numpy(d1, zp1, d2, zp2, out):
    rng = np.random.default_rng(zp2 + 10)
    a, b = _quantized(rng, d1, (4, 6, 5, 3)), _quantized(rng, d2, (4, 6, 5, 3))
    lo, hi = q.QRANGE[out]
    for s1, s2, so, act in ((0.02, 0.05, 0.04, (lo, hi)), (0.11, 0.013, 0.07, (lo + 20, hi - 9)),
                            (0.5, 0.5, 1.0, (lo, hi))):
        kw = dict(scale1=s1, zp1=zp1, scale2=s2, zp2=zp2, out_scale=so, out_zp=5, act_min=act[0], act_max=act[1],
                  rounding="fp32")
        want = q.add(a, b, **kw)  # int64, numpy
        got = q.add(a, b, out_dtype=out, **kw)  # the numba kernel
        assert got.dtype == np.dtype(out)
        np.testing.assert_array_equal(got.astype(np.int64), want)
        np.testing.assert_array_equal(q.add(a.astype(np.int64), b, out_dtype=out, **kw), want)  # (numpy again)


def test_average_pool_batched_equals_per_image():
    rng = np.random.default_rng(5)
    x = _quantized(rng, "int8", (3, 7, 6, 4))
    for pads, stride in (((0, 0, 0, 0), (1, 1)), ((1, 1, 0, 1), (2, 2))):
        batched = q.average_pool(x, filter_hw=(3, 3), stride=stride, pads=pads, act_min=-128, act_max=127)
        for i in range(3):
            np.testing.assert_array_equal(batched[i], q.average_pool(x[i], filter_hw=(3, 3), stride=stride,
                                                                     pads=pads, act_min=-128, act_max=127))


def test_blas_threads_is_scoped():
    a = np.arange(12.0).reshape(3, 4)
    with q.blas_threads(1):
        inside = a @ a.T
    with q.blas_threads(None):
        np.testing.assert_array_equal(a @ a.T, inside)
    setter = q._openblas_set_threads_local()
    if setter is not None:  # the calling thread's count is restored
        before = setter(3)
        with q.blas_threads(1):
            pass
        assert setter(before) == 3
