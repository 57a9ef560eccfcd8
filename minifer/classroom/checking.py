"""What the checks of every exercise share: a failure that says by how much, comparisons with the
reference, numeric gradients, and a small task a network must learn.

Values are compared in float64 (the reference and the student's code then differ only by rounding,
about 1e-15), by the relative error of :func:`minifer.gradcheck.rel_error`: the largest difference
over the largest value. A wrong formula is off by 1e-2 or much more; ``TOL`` is 1e-6.
"""
import numpy as np

from .. import zoo
from ..gradcheck import numeric_grad, rel_error

TOL = 1e-6


class Failed(AssertionError):
    """A check found a wrong answer; its message says what and by how much."""


def compare(what, got, want, tol=TOL):
    """Raise :class:`Failed` unless ``got`` has the shape of ``want`` and its values within ``tol``."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        hint = " (the shape of its transpose: a missing .T?)" if got.shape == want.shape[::-1] else ""
        raise Failed(f"{what} has shape {got.shape}, expected {want.shape}{hint}")
    if not np.all(np.isfinite(got)):
        raise Failed(f"{what} has {int((~np.isfinite(got)).sum())} NaN or infinite values")
    err = rel_error(got, want)
    if err > tol:
        raise Failed(f"{what} is off by {np.abs(got - want).max():.3g} at most, a relative error of "
                     f"{err:.1e} (allowed {tol:.0e}){_scale_hint(got, want)}")


def _scale_hint(got, want):
    """Says so when ``got`` is ``want`` times a constant other than 1 (a factor such as 1/N forgotten)."""
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    if w.size < 2 or not (w @ w) > 0:                     # any number is a multiple of another
        return ""
    c = (g @ w) / (w @ w)
    if abs(c - 1) > 1e-3 and rel_error(g, c * w) < 1e-6:
        return f"; it is the reference times {c:.4g}: a factor missing or extra?"
    return ""


def check_shape(what, got, shape, dtype=np.float32):
    """Raise :class:`Failed` unless array ``got`` has this shape and dtype."""
    if not hasattr(got, "shape"):
        raise Failed(f"{what} is a {type(got).__name__}, expected an array of shape {shape}")
    if tuple(got.shape) != tuple(shape):
        hint = " (the shape of its transpose: a missing .T?)" if tuple(got.shape) == tuple(shape)[::-1] else ""
        raise Failed(f"{what} has shape {tuple(got.shape)}, expected {tuple(shape)}{hint}")
    if dtype is not None and got.dtype != dtype:
        raise Failed(f"{what} has dtype {got.dtype}, expected {np.dtype(dtype)} (float32 in, float32 out)")


def gradients_agree(what, analytic, f, x, tol=TOL):
    """Raise :class:`Failed` unless ``analytic`` matches the central-difference gradient of f() in x."""
    numeric = numeric_grad(f, x)
    if np.shape(analytic) != numeric.shape:
        raise Failed(f"{what}: the gradient has shape {np.shape(analytic)}, expected {numeric.shape}")
    err = rel_error(analytic, numeric)
    if not err <= tol:
        raise Failed(f"{what}: your gradient and the numeric one differ by a relative error of {err:.1e} "
                     f"(allowed {tol:.0e}){_scale_hint(np.asarray(analytic), numeric)}")


def spots(n, seed, size=16, classes=3):
    """A small task to learn: (n, size, size, 1) float32 noise with a bright 3x3 spot in one of
    ``classes`` horizontal bands; the label (n,) is the band."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    band = size // classes
    for i in range(n):
        r, c = y[i] * band + rng.integers(0, band - 2), rng.integers(0, size - 2)
        x[i, r:r + 3, c:c + 3, 0] += 2.0
    return x, y


def tiny_model():
    """The tiny CNN for :func:`spots`: 16x16x1 -> two conv blocks (8, 16 channels) -> 4x4x16 -> 3."""
    return zoo.tiny_cnn(3, input_size=16, widths=(8, 16), seed=0)


def accuracy(model, x, y):
    """Share of ``x`` that ``model`` classifies as ``y`` (evaluation mode)."""
    return float((model.predict_proba(x).argmax(axis=1) == y).mean())
