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
