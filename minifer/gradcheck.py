"""Numeric gradient checking with central differences in float64.

For a scalar loss L(x) = sum(f(x) * dout) with a fixed random ``dout``, the
analytic gradient from a layer's backward pass must match::

    dL/dx_i ~= (L(x + h e_i) - L(x - h e_i)) / (2h)

``rel_error`` is max|a - b| / max(max|a|, max|b|): the error relative to the
gradient's scale, so entries that are exactly zero in theory (a conv bias right
before batch-norm) do not blow it up. float64 central differences give about
1e-8 for smooth functions.
"""
import numpy as np


def numeric_grad(f, x, h=1e-5):
    """Central-difference gradient of scalar f() with respect to array x (changed in place, restored)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        g[it.multi_index] = _central_difference(f, x, it.multi_index, h)
    return g


def _central_difference(f, x, i, h):
    """``(f(x + h e_i) - f(x - h e_i)) / 2h``; ``x[i]`` is restored afterwards."""
    old = x[i]
    x[i] = old + h
    fp = f()
    x[i] = old - h
    fm = f()
    x[i] = old
    return (fp - fm) / (2 * h)


def rel_error(a, b):
    """max|a - b| / max(max|a|, max|b|): the error relative to the gradient's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(a), initial=0)), float(np.max(np.abs(b), initial=0)), 1e-12)
    return float(np.max(np.abs(a - b), initial=0)) / scale


def check_layer(layer, x, seed=0, h=1e-5, relu=False):
    """Compare a layer's backward pass with numeric gradients, in float64.

    Returns {"x": err, "<param>": err, ...} (max relative errors). The layer's
    parameters are cast to float64 for the check. ``relu``: check the layer with
    a ReLU fused into it (``forward(x, relu=True)``).
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64).copy()
    for p in layer.params.values():
        p.data = p.data.astype(np.float64)
    for k, b in layer.buffers.items():
        layer.buffers[k] = b.astype(np.float64)
    dout = rng.standard_normal(layer_forward(layer, x, relu).shape)

    def loss():
        return float((layer_forward(layer, x, relu) * dout).sum())

    layer_forward(layer, x, relu)
    dx = layer.backward(dout)
    analytic = {"x": dx}
    analytic.update({k: p.grad.copy() for k, p in layer.params.items()})
    errs = {"x": rel_error(dx, numeric_grad(loss, x, h))}
    for k, p in layer.params.items():
        errs[k] = rel_error(analytic[k], numeric_grad(loss, p.data, h))
    return errs


def layer_forward(layer, x, relu=False):
    """Forward with a fixed random stream for stochastic layers (dropout); a fused ReLU if ``relu``."""
    if hasattr(layer, "rng"):
        layer.rng = np.random.default_rng(1234)
    return layer.forward(x, relu=True) if relu else layer.forward(x)


def check_model(model, x, y, loss_fn, h=1e-5, max_checks=20, seed=0):
    """Check every parameter gradient of a whole model + loss, in float64.

    Compares ``max_checks`` randomly chosen entries of each parameter (and of
    the input) against central differences; returns {"x" or "layer/param": err}.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for p in layer.params.values():
            p.data = p.data.astype(np.float64)
        for k, b in layer.buffers.items():
            layer.buffers[k] = b.astype(np.float64)
    x = np.asarray(x, np.float64).copy()

    def loss():
        model.seed(np.random.default_rng(1234))
        for _, p in model.named_params():   # changed in place: what eval mode kept of them is stale
            p.version += 1
        return loss_fn(model.forward(x), y)

    loss()
    dx = model.backward(loss_fn.backward(), input_grad=True)
    targets = {"x": (x, dx)}
    targets.update({k: (p.data, p.grad.copy()) for k, p in model.named_params()})
    errs = {}
    for name, (arr, grad) in targets.items():
        flat = rng.choice(arr.size, size=min(max_checks, arr.size), replace=False)
        num, ana = [], []
        for f in flat:
            i = np.unravel_index(f, arr.shape)
            num.append(_central_difference(loss, arr, i, h))
            ana.append(grad[i])
        errs[name] = rel_error(ana, num)
    return errs
