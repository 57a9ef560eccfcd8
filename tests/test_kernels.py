"""Every fast op (Numba; CuPy when a GPU is present) agrees with the NumPy reference."""
import numpy as np
import pytest

from minifer import backend
from minifer.ops import cpu, reference as ref

rng = np.random.default_rng(0)
SHAPES = [((2, 7, 6, 3), 3, 1, 1), ((2, 7, 7, 4), 3, 2, 0), ((1, 5, 5, 2), 1, 1, 0), ((3, 9, 8, 5), 5, 2, 2)]


def _gpu_or_skip():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("no CUDA device")
    from minifer.ops import gpu
    return cp, gpu


@pytest.fixture(params=["whole", "split"], autouse=True)
def split(request, monkeypatch):
    """Every CPU kernel test runs whole in the calling thread (small inputs) and split into row
    ranges on two of minifer's worker threads (large inputs)."""
    if request.param == "whole":
        monkeypatch.setattr(cpu, "SERIAL_MAX", 1 << 62)
        yield request.param
        return
    monkeypatch.setattr(cpu, "SERIAL_MAX", -1)
    backend.set_workers(2)
    yield request.param
    backend.set_workers(None)


def test_split_calls_run_in_pieces_on_the_workers(split):
    pieces = cpu._rows(lambda lo, hi: (lo, hi, backend.in_worker()), 10, 100)
    assert pieces[0][0] == 0 and pieces[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert len(pieces) == (1 if split == "whole" else 2 * cpu.PIECES)
    assert all(w for _, _, w in pieces) == (split == "split") and not backend.in_worker()


@pytest.mark.parametrize("shape,k,s,p", SHAPES)
def test_im2col_numba_matches_reference(shape, k, s, p):
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(cpu.im2col(x, k, k, s, p), ref.im2col(x, k, k, s, p))


def dot(a, b):
    return float((np.asarray(a, np.float64) * b).sum())


@pytest.mark.parametrize("shape,k,s,p", SHAPES)
def test_col2im_is_the_adjoint_of_im2col(shape, k, s, p):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: col2im is im2col's transpose (float64)."""
    rtol = 1e-10
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(ref.im2col(x, k, k, s, p).shape)
    dx_fast = cpu.col2im(cols, shape, k, k, s, p)
    np.testing.assert_allclose(dx_fast, ref.col2im(cols, shape, k, k, s, p), rtol=rtol, atol=rtol)
    assert dot(ref.im2col(x, k, k, s, p), cols) == pytest.approx(dot(x, dx_fast), rel=rtol)


@pytest.mark.parametrize("bias,relu", [(True, True), (True, False), (False, True)])
def test_bias_relu_numba_matches_reference_in_place(bias, relu):
    out = rng.standard_normal((2, 5, 4, 6)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32) if bias else None
    want = ref.bias_relu(out.copy(), b, relu)
    got = out.copy()
    assert cpu.bias_relu(got, b, relu) is got
    np.testing.assert_array_equal(got, want)
    view = out.copy()[:, :, ::2]                   # not contiguous: still in place
    cpu.bias_relu(view, b, relu)
    np.testing.assert_array_equal(view, want[:, :, ::2])


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1)])
def test_maxpool_numba_matches_reference(k, s):
    """Same outputs, and the same ``arg`` (flat h*W+w index of each max) on both paths."""
    x = rng.standard_normal((2, 8, 7, 3)).astype(np.float32)
    out, arg = cpu.maxpool_forward(x, k, s)
    out_r, arg_r = ref.maxpool_forward(x, k, s)
    np.testing.assert_array_equal(out, out_r)
    np.testing.assert_array_equal(arg, arg_r)
    assert arg.dtype == arg_r.dtype == np.int32
    flat = x.reshape(2, -1, 3)                     # the index really points at the max
    np.testing.assert_array_equal(np.take_along_axis(flat, arg.reshape(2, -1, 3), axis=1).reshape(out.shape), out)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(cpu.maxpool_backward(dout, arg, x.shape, k, s),
                               ref.maxpool_backward(dout, arg_r, x.shape, k, s), rtol=1e-6, atol=1e-6)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=2e-6 * np.abs(expected).max())


WINO_SHAPES = [((2, 6, 6, 3), 1), ((1, 7, 5, 2), 1), ((2, 8, 9, 3), 0), ((1, 5, 6, 4), 2), ((3, 1, 2, 2), 1),
               ((2, 13, 10, 3), 1), ((1, 11, 12, 2), 2), ((2, 12, 9, 3), 0)]


@pytest.mark.parametrize("shape,pad", WINO_SHAPES)
def test_winograd_tiles_numba_match_reference(shape, pad):
    """Tiles, untiling (with its fused epilogue) and both adjoints: the same values on both paths,
    odd sizes and pads 0-2 (float32: the transforms add up to about 100 values, so the two
    summation orders differ by about 1e-6 of the largest)."""
    x = rng.standard_normal(shape).astype(np.float32)
    close(cpu.winograd_tiles(x, pad), ref.winograd_tiles(x, pad))
    oh, ow, th, tw = ref.winograd_grid(shape[1], shape[2], pad)
    m = rng.standard_normal((ref.WINO_PLANES, shape[0] * th * tw, 5)).astype(np.float32)
    out_shape = (shape[0], oh, ow, 5)
    close(cpu.winograd_untile(m, out_shape), ref.winograd_untile(m, out_shape))
    b = rng.standard_normal(5).astype(np.float32)                     # the fused epilogue, into out
    out = np.full((shape[0] + 1, oh, ow, 5), np.nan, np.float32)
    cpu.winograd_untile(m, out_shape, out[1:], b, True)
    expect = ref.winograd_untile(m, out_shape, b=b, relu=True)
    close(out[1:], expect)
    close(expect, np.maximum(ref.winograd_untile(m, out_shape) + b, 0))
    assert np.isnan(out[0]).all()
    dy = rng.standard_normal(out_shape).astype(np.float32)
    close(cpu.winograd_untile_adjoint(dy), ref.winograd_untile_adjoint(dy))
    dv = rng.standard_normal((ref.WINO_PLANES, shape[0] * th * tw, shape[3])).astype(np.float32)
    dx = np.full(shape, np.nan, np.float32)                              # every pixel is written
    cpu.winograd_tiles_adjoint(dv, shape, pad, dx)
    close(dx, ref.winograd_tiles_adjoint(dv, shape, pad))


@pytest.mark.parametrize("shape,pad", WINO_SHAPES)
def test_winograd_adjoints(shape, pad):
    """<untile(M), dY> == <M, untile_adjoint(dY)>, <tiles(x), dV> == <x, tiles_adjoint(dV)> and
    <filter(w), dU> == <w, filter_adjoint(dU)> (float64)."""
    dtype, rtol = np.float64, 1e-10
    oh, ow, th, tw = ref.winograd_grid(shape[1], shape[2], pad)
    m = rng.standard_normal((ref.WINO_PLANES, shape[0] * th * tw, 3)).astype(dtype)
    dy = rng.standard_normal((shape[0], oh, ow, 3)).astype(dtype)
    assert dot(cpu.winograd_untile(m, dy.shape), dy) == pytest.approx(dot(m, cpu.winograd_untile_adjoint(dy)), rel=rtol)
    x = rng.standard_normal(shape).astype(dtype)
    dv = rng.standard_normal((ref.WINO_PLANES, shape[0] * th * tw, shape[3])).astype(dtype)
    for impl in (cpu, ref):
        assert dot(impl.winograd_tiles(x, pad), dv) == pytest.approx(
            dot(x, impl.winograd_tiles_adjoint(dv, shape, pad)), rel=rtol)
    w, du = rng.standard_normal((3, 3, 2, 3)), rng.standard_normal((ref.WINO_PLANES, 2, 3))
    assert dot(ref.winograd_filter(w), du) == pytest.approx(dot(w, ref.winograd_filter_adjoint(du)), rel=1e-10)


def test_winograd_filter_and_one_tile_by_the_book():
    """U = G g G^T, and one tile gives Y = A^T [U * (B^T d B)] A = the 4x4 correlation of d with g;
    the same for F(2x2, 3x3)'s matrices (chapter 15) on a 4x4 tile."""
    g = rng.standard_normal((3, 3))
    u = ref.winograd_filter(g[:, :, None, None])[:, 0, 0].reshape(6, 6)
    np.testing.assert_allclose(u, ref.WINO_G.astype(np.float64) @ g @ ref.WINO_G.T, rtol=1e-12)
    for BT, G, AT in ((ref.WINO_BT, ref.WINO_G, ref.WINO_AT), ref.WINO_F2):
        BT, G, AT = (m.astype(np.float64) for m in (BT, G, AT))
        m = AT.shape[0]
        d = rng.standard_normal((m + 2, m + 2))
        direct = np.array([[(d[i:i + 3, j:j + 3] * g).sum() for j in range(m)] for i in range(m)])
        np.testing.assert_allclose(AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T, direct, rtol=1e-6, atol=1e-6)


def test_batchnorm_ops_match_reference():
    x = (rng.standard_normal((4 * 6 * 6, 8)) * 3 + 2).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    mu, inv = rng.standard_normal(8).astype(np.float32), rng.uniform(0.5, 2, 8).astype(np.float32)
    gamma, beta = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    np.testing.assert_allclose(cpu.channel_sums(g, x, mu, inv), ref.channel_sums(g, x, mu, inv), rtol=1e-6,
                               atol=1e-5)        # float32 products: a sum that cancels to ~0.3 is off by ~1e-6
    np.testing.assert_allclose(cpu.affine(x, mu, gamma, beta), ref.affine(x, mu, gamma, beta), rtol=1e-5, atol=1e-5)
    db, dg = ref.channel_sums(g, x, mu, inv).astype(np.float32)
    np.testing.assert_allclose(cpu.bn_input_grad(g, x, mu, inv, gamma, db, dg),
                               ref.bn_input_grad(g, x, mu, inv, gamma, db, dg), rtol=1e-4, atol=1e-4)


def test_batchnorm_ops_with_fused_relu_match_reference():
    """With a ReLU fused after the batch-norm: the forward clamps at 0, and the backward sums and
    input gradient count dout only where (x - mu) * scale + shift > 0, as the reference."""
    x = (rng.standard_normal((4 * 6 * 6, 8)) * 3 + 2).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    mu, inv = rng.standard_normal(8).astype(np.float32), rng.uniform(0.5, 2, 8).astype(np.float32)
    gamma, beta = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    scale = gamma * inv
    y = cpu.affine(x, mu, scale, beta, True)
    np.testing.assert_allclose(y, ref.affine(x, mu, scale, beta, True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, np.maximum(cpu.affine(x, mu, scale, beta), 0))
    assert 0.2 < (y > 0).mean() < 0.8
    gate = (scale, beta)
    gated = g * (y > 0)
    sums = cpu.channel_sums(g, x, mu, inv, gate)
    np.testing.assert_allclose(sums, ref.channel_sums(g, x, mu, inv, gate), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(sums, ref.channel_sums(gated, x, mu, inv), rtol=1e-6, atol=1e-5)
    db, dg = sums.astype(np.float32)
    np.testing.assert_allclose(cpu.bn_input_grad(g, x, mu, inv, gamma, db, dg, gate),
                               ref.bn_input_grad(gated, x, mu, inv, gamma, db, dg), rtol=1e-4, atol=1e-4)


def test_kernels_keep_float32():
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    assert cpu.im2col(x, 3, 3, 1, 1).dtype == np.float32
    v = cpu.winograd_tiles(x, 1)
    assert v.dtype == cpu.winograd_untile(v, x.shape).dtype == cpu.winograd_untile_adjoint(x).dtype == np.float32
    assert ref.winograd_filter(np.ones((3, 3, 2, 2), np.float32)).dtype == np.float32
    assert cpu.col2im(cpu.im2col(x, 3, 3, 1, 1), x.shape, 3, 3, 1, 1).dtype == np.float32
    x2, c = x.reshape(-1, 3), np.ones(3, np.float32)
    assert cpu.affine(x2, c, c, c).dtype == np.float32
    assert cpu.bn_input_grad(x2, x2, c, c, c, c, c).dtype == np.float32


def test_gpu_kernels_match_reference():
    cp, gpu = _gpu_or_skip()
    for shape, k, s, p in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        cols = gpu.im2col(cp.asarray(x), k, k, s, p)
        np.testing.assert_array_equal(cols.get(), ref.im2col(x, k, k, s, p))
        c = rng.standard_normal(cols.shape).astype(np.float32)
        np.testing.assert_allclose(gpu.col2im(cp.asarray(c), shape, k, k, s, p).get(),
                                   ref.col2im(c, shape, k, k, s, p), rtol=1e-5, atol=1e-5)
    x = rng.standard_normal((2, 8, 7, 3)).astype(np.float32)
    out, arg = gpu.maxpool_forward(cp.asarray(x), 3, 2)
    np.testing.assert_array_equal(arg.get(), cpu.maxpool_forward(x, 3, 2)[1])


def test_no_kernel_starts_numbas_thread_pool():
    """Every kernel is a serial ``nogil`` build (minifer's workers are the parallelism), so Numba's
    OpenMP threads never compete with OpenBLAS's for the cores."""
    kernels = [v for v in vars(cpu).values() if hasattr(v, "py_func") and hasattr(v, "targetoptions")]
    assert len(kernels) >= 10
    for k in kernels:
        assert k.targetoptions.get("nogil") and not k.targetoptions.get("parallel"), k.py_func.__name__
