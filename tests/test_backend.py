"""minifer.backend: the BLAS thread limit used by the predict command, and minifer's worker threads."""
import sys

import numpy as np
import pytest

from minifer import backend


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_set_blas_threads_limits_numpys_openblas():
    get = backend.openblas_function("get_num_threads")
    if get is None:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    before = get()
    a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096
    ref = a @ a
    try:
        assert backend.set_blas_threads(1) is True
        assert get() == 1
        np.testing.assert_allclose(a @ a, ref, rtol=1e-6)
    finally:
        backend.set_blas_threads(before)
    assert get() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_numpys_openblas_comes_first_beside_opencvs():
    """OpenCV's wheels bundle their own OpenBLAS; the thread limit must reach NumPy's."""
    import os
    cv2 = pytest.importorskip("cv2")
    cv2.setNumThreads(1)                     # make sure OpenCV's libraries are loaded
    libs = backend.openblas_libraries()
    if not libs:
        pytest.skip("no OpenBLAS loaded")
    numpy_home = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy")
    numpys = [p for p in libs if p.startswith(numpy_home)]
    if numpys:
        assert libs[0] == numpys[0], libs


@pytest.fixture
def workers():
    """Two of minifer's worker threads for one test, whatever the CPU count; the default afterwards."""
    backend.set_workers(2)
    yield
    backend.set_workers(None)


def test_map_chunks_runs_on_the_workers_and_keeps_the_order(workers):
    slices = [slice(i, i + 1) for i in range(6)]
    out = backend.map_chunks(lambda s: (s.start, backend.in_worker()), slices)
    assert [s for s, _ in out] == list(range(6)) and all(w for _, w in out)
    assert not backend.in_worker()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_workers_run_on_one_blas_thread_and_give_the_count_back(workers):
    """OpenBLAS runs on one thread while the workers run GEMMs side by side, and has the count it
    had before afterwards (minifer's setting holds only around its own calls)."""
    get = backend.openblas_function("get_num_threads")
    if get is None:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    before = get()
    try:
        backend.set_blas_threads(2)
        inside = backend.map_chunks(lambda s: get(), [slice(0, 1), slice(1, 2), slice(2, 3)])
        assert inside == [1, 1, 1] and get() == 2
        assert backend.map_chunks(lambda s: get(), [slice(0, 1)]) == [2]      # one piece: the caller's count
    finally:
        backend.set_blas_threads(before)


def test_workers_start_by_themselves_one_per_usable_cpu():
    backend.set_workers(None)
    assert backend.worker_count() == backend.usable_cpus()
    if backend.usable_cpus() > 1:
        assert all(backend.map_chunks(lambda s: backend.in_worker(), [0, 1]))


def test_a_forked_child_starts_its_own_workers(workers):
    """The parent's worker threads do not exist in a forked child: it must not wait for them."""
    import multiprocessing
    import time
    backend.map_chunks(time.sleep, [0.05, 0.05, 0.05])      # both of the parent's threads started
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(backend.map_chunks, (abs, [-1, -2, -3])).get(timeout=60) == [1, 2, 3]


@pytest.mark.parametrize("cin,pad", [(16, 1), (1, 1), (16, 0)])   # Winograd, im2col (gray input), no padding
def test_convolution_on_the_workers_matches_the_calling_thread(cin, pad):
    """Many chunks (a 2 KB chunk size) run on two workers with the serial kernels and give the
    same output and gradients as in the calling thread."""
    from minifer import ops
    from minifer.layers.conv import conv_backward, conv_forward
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 10, 10, cin)).astype(np.float32)
    w = rng.standard_normal((3, 3, cin, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal((9, 10 - 2 + 2 * pad, 10 - 2 + 2 * pad, 8)).astype(np.float32)

    def run():
        out, cache = conv_forward(x, w, b, 1, pad, relu=True)
        return (out, *conv_backward(g, cache))
    saved = ops.CHUNK_BYTES, ops.WINOGRAD_CHUNK_BYTES
    ops.CHUNK_BYTES = ops.WINOGRAD_CHUNK_BYTES = 2048
    try:
        backend.set_workers(1)
        alone = run()
        backend.set_workers(2)
        together = run()
    finally:
        backend.set_workers(None)
        ops.CHUNK_BYTES, ops.WINOGRAD_CHUNK_BYTES = saved
    for a, t in zip(alone, together):
        np.testing.assert_allclose(t, a, rtol=1e-5, atol=1e-4)
