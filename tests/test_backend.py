"""minifer.backend: the BLAS thread limit used by the predict command."""
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
