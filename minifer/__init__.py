"""minifer: a small, fast, readable CNN framework in NumPy (+ Numba, optional CuPy).

    import minifer as mf
    model = mf.zoo.minivgg()
    print(model.summary())

``import minifer`` imports NumPy only; Numba kernels load on the first conv.
"""
from ._version import __version__  # noqa: F401
from . import backend, layers, optim, schedules, zoo  # noqa: E402
from .io import WeightsError, load_npz, save_npz  # noqa: E402
from .layers import *  # noqa: E402,F401,F403
from .model import Sequential, load_model  # noqa: E402
