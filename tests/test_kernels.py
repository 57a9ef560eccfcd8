"""The fast kernels (Numba; CuPy when a GPU is present) agree with the NumPy references."""
import numpy as np
import pytest

from minifer import fast_kernels as fk
from minifer import kernels
from minifer.layers import norm, pool

rng = np.random.default_rng(0)
SHAPES = [((2, 7, 6, 3), 3, 1, 1), ((2, 7, 7, 4), 3, 2, 0), ((1, 5, 5, 2), 1, 1, 0), ((3, 9, 8, 5), 5, 2, 2)]


@pytest.mark.parametrize("shape,k,s,p", SHAPES)
def test_im2col_numba_matches_reference(shape, k, s, p):
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(fk.im2col(x, k, k, s, p), kernels.im2col_ref(x, k, k, s, p))


@pytest.mark.parametrize("shape,k,s,p", SHAPES)
def test_col2im_is_the_adjoint_of_im2col(shape, k, s, p):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: col2im is im2col's transpose."""
    x = rng.standard_normal(shape)
    cols = rng.standard_normal(kernels.im2col_ref(x, k, k, s, p).shape)
    dx_fast = fk.col2im(cols, shape, k, k, s, p)
    np.testing.assert_allclose(dx_fast, kernels.col2im_ref(cols, shape, k, k, s, p), rtol=1e-12, atol=1e-12)
    lhs = (kernels.im2col_ref(x, k, k, s, p) * cols).sum()
    assert lhs == pytest.approx((x * dx_fast).sum(), rel=1e-10)


@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1)])
def test_maxpool_numba_matches_reference(k, s):
    x = rng.standard_normal((2, 8, 7, 3)).astype(np.float32)
    out, arg = fk.maxpool_forward(x, k, s)
    out_ref, arg_ref = pool.maxpool_forward_ref(x, k, s)
    np.testing.assert_array_equal(out, out_ref)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(fk.maxpool_backward(dout, arg, x.shape),
                               pool.maxpool_backward_ref(dout, arg_ref, x.shape, k, s), rtol=1e-6, atol=1e-6)


def test_batchnorm_numba_matches_reference():
    x = (rng.standard_normal((4, 6, 6, 8)) * 3 + 2).astype(np.float32)
    g, b = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    out, cache, (mu, var) = fk.batchnorm_forward(x, g, b, 1e-5)
    out_r, cache_r, (mu_r, var_r) = norm.batchnorm_forward(x.astype(np.float64), g, b, 1e-5)
    np.testing.assert_allclose(out, out_r, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, var_r, rtol=1e-5)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    for fast, ref in zip(fk.batchnorm_backward(dout, cache), norm.batchnorm_backward(dout.astype(np.float64), cache_r)):
        np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_kernels_keep_float32():
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    assert fk.im2col(x, 3, 3, 1, 1).dtype == np.float32
    assert fk.col2im(fk.im2col(x, 3, 3, 1, 1), x.shape, 3, 3, 1, 1).dtype == np.float32
    assert fk.batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32), 1e-5)[0].dtype == np.float32


def test_gpu_kernels_match_cpu():
    cp = pytest.importorskip("cupy")
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("no CUDA device")
    from minifer import gpu_kernels
    for shape, k, s, p in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        cols = gpu_kernels.im2col(cp.asarray(x), k, k, s, p)
        np.testing.assert_array_equal(cols.get(), kernels.im2col_ref(x, k, k, s, p))
        c = rng.standard_normal(cols.shape).astype(np.float32)
        np.testing.assert_allclose(gpu_kernels.col2im(cp.asarray(c), shape, k, k, s, p).get(),
                                   kernels.col2im_ref(c, shape, k, k, s, p), rtol=1e-5, atol=1e-5)
