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


def __getattr__(name):
    """``minifer.detect_emotions`` and ``minifer.EmotionRecognizer``, the emotion application's
    one-call API (:mod:`minifer.fer.recognizer`), imported on first use (PEP 562)."""
    if name in ("detect_emotions", "EmotionRecognizer"):
        from .fer import recognizer
        return getattr(recognizer, name)
    raise AttributeError(f"module 'minifer' has no attribute {name!r}")
