"""The checks of the layer exercises: dense, ReLU, softmax cross-entropy, im2col, col2im, max-pool,
batch-norm. Each takes the student's module and raises :class:`~.checking.Failed` (or whatever the
student's code raises); the reference is minifer's own code on the same random inputs."""
import numpy as np

from .. import layers
from ..ops import reference
from .checking import Failed, check_shape, compare, gradients_agree

F32, F64 = np.float32, np.float64


def need(mod, name):
    """``mod.name``, or a failure that says it is missing."""
    if not hasattr(mod, name):
        raise Failed(f"your file has no {name} (renamed or deleted?)")
    return getattr(mod, name)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _as(layer, dtype):
    """The layer with its parameters in ``dtype``."""
    for p in layer.params.values():
        p.data = p.data.astype(dtype)
    return layer


def _backward(layer, x, dout):
    """``{"dx": ..., "W.grad": ..., ...}`` of one forward and backward pass."""
    layer.forward(x)
    dx = layer.backward(dout.copy())
    return {"dx": dx, **{f"{k}.grad": p.grad for k, p in layer.params.items()}}


def _layer_gradients(layer, x, dout):
    """Every gradient of a layer's backward pass in float64 against central differences."""
    def loss():
        return float((layer.forward(x) * dout).sum())

    grads = _backward(layer, x, dout)
    gradients_agree("dx", grads["dx"], loss, x)
    for k, p in layer.params.items():
        gradients_agree(f"d{k}", grads[f"{k}.grad"], loss, p.data)


# ---- 1. dense backward ---------------------------------------------------------------
def _dense(cls):
    return cls(5, 3, rng=_rng(1))


def dense_shapes(mod):
    """dx (4, 5), W.grad (5, 3) and b.grad (3,), all float32, for a Dense(5, 3) on float32 input."""
    got = _backward(_dense(need(mod, "Dense")), _rng().standard_normal((4, 5), F32),
                    _rng(2).standard_normal((4, 3), F32))
    for what, shape in (("dx", (4, 5)), ("W.grad", (5, 3)), ("b.grad", (3,))):
        check_shape(what, got[what], shape)


def dense_values(mod):
    """dx, W.grad and b.grad equal minifer's Dense.backward on the same weights and input."""
    x, dout = _rng().standard_normal((4, 5)), _rng(2).standard_normal((4, 3))
    got = _backward(_as(_dense(need(mod, "Dense")), F64), x, dout)
    want = _backward(_as(_dense(layers.Dense), F64), x, dout)          # same seed: the same weights
    for what in want:
        compare(what, got[what], want[what])


def dense_gradients(mod):
    """dx, dW and db agree with central differences of sum(forward(x) * dout)."""
    _layer_gradients(_as(_dense(need(mod, "Dense")), F64), _rng().standard_normal((4, 5)),
                     _rng(2).standard_normal((4, 3)))


# ---- 2. ReLU ---------------------------------------------------------------------------
def relu_shapes(mod):
    """The output and dx keep the input's shape (2, 3, 4, 5) and float32."""
    layer = need(mod, "ReLU")()
    out = layer.forward(_rng().standard_normal((2, 3, 4, 5), F32))
    check_shape("forward's output", out, (2, 3, 4, 5))
    check_shape("dx", layer.backward(np.ones((2, 3, 4, 5), F32)), (2, 3, 4, 5))


def relu_values(mod):
    """Forward and backward equal minifer's ReLU."""
    mine, ref = need(mod, "ReLU")(), layers.ReLU()
    x, dout = _rng().standard_normal((2, 3, 4, 5)), _rng(2).standard_normal((2, 3, 4, 5))
    compare("forward's output", mine.forward(x), ref.forward(x))
    compare("dx", mine.backward(dout), ref.backward(dout))


def relu_gradients(mod):
    """dx agrees with central differences."""
    _layer_gradients(need(mod, "ReLU")(), _rng().standard_normal((3, 7)), _rng(2).standard_normal((3, 7)))


# ---- 3. softmax cross-entropy ----------------------------------------------------------------
def _loss_cases(n=8, k=5):
    """(description, constructor arguments, targets) of the cases every check runs."""
    rng = _rng(3)
    y = rng.integers(0, k, n)
    soft = rng.random((n, k))
    return [("labels", {}, y), ("label smoothing 0.1", {"label_smoothing": 0.1}, y),
            ("class weights", {"class_weights": rng.random(k) + 0.5}, y),
            ("soft targets", {}, soft / soft.sum(axis=1, keepdims=True))]


def softmax_shapes(mod):
    """The loss is one number; dlogits is (8, 5) float32."""
    loss_fn = need(mod, "SoftmaxCrossEntropy")()
    loss = loss_fn(_rng().standard_normal((8, 5), F32), np.arange(8) % 5)
    if np.ndim(loss) != 0:
        raise Failed(f"the loss has shape {np.shape(loss)}, expected one number")
    check_shape("dlogits", loss_fn.backward(), (8, 5))


def softmax_values(mod):
    """The loss and dlogits equal minifer's, with labels, label smoothing, class weights and soft targets."""
    logits = _rng().standard_normal((8, 5))
    for case, kw, y in _loss_cases():
        mine, ref = need(mod, "SoftmaxCrossEntropy")(**kw), layers.SoftmaxCrossEntropy(**kw)
        compare(f"the loss ({case})", mine(logits, y), ref(logits, y))
        compare(f"dlogits ({case})", mine.backward(), ref.backward())


def softmax_large_logits(mod):
    """log_softmax and the loss stay finite and right for logits near +-1000."""
    logits = _rng().standard_normal((8, 5)) * 1000          # exp(1000) overflows: subtract the max first
    y = np.arange(8) % 5
    compare("log_softmax of logits near +-1000", need(mod, "log_softmax")(logits),
            layers.loss.log_softmax(logits))
    compare("the loss for logits near +-1000", need(mod, "SoftmaxCrossEntropy")()(logits, y),
            layers.SoftmaxCrossEntropy()(logits, y))


def softmax_gradients(mod):
    """dlogits agrees with central differences of the loss, in every case of :func:`softmax_values`."""
    logits = _rng().standard_normal((8, 5))
    for case, kw, y in _loss_cases():
        loss_fn = need(mod, "SoftmaxCrossEntropy")(**kw)
        loss_fn(logits, y)
        gradients_agree(f"dlogits ({case})", loss_fn.backward(), lambda: float(loss_fn(logits, y)), logits)


# ---- 4, 5. convolution: im2col and col2im ----------------------------------------------------
CONV_CASES = [(3, 1, 1), (3, 2, 0), (2, 2, 0), (3, 2, 2), (1, 1, 0)]     # (kernel, stride, padding)
X_SHAPE = (2, 5, 6, 3)


def _cols_shape(k, s, p, x_shape=X_SHAPE):
    n, h, w, c = x_shape
    return (n * reference.out_size(h, k, s, p) * reference.out_size(w, k, s, p), k * k * c)


def im2col_shapes(mod):
    """cols is (N*OH*OW, KH*KW*C) float32 for every (kernel, stride, padding) of ``CONV_CASES``."""
    for k, s, p in CONV_CASES:
        check_shape(f"im2col(x, {k}, {k}, stride={s}, pad={p})",
                    need(mod, "im2col")(_rng().standard_normal(X_SHAPE, F32), k, k, s, p), _cols_shape(k, s, p))


def im2col_values(mod):
    """cols equals minifer's im2col."""
    x = _rng().standard_normal(X_SHAPE)
    for k, s, p in CONV_CASES:
        compare(f"im2col(x, {k}, {k}, stride={s}, pad={p})", need(mod, "im2col")(x, k, k, s, p),
                reference.im2col(x, k, k, s, p))


def im2col_convolution(mod):
    """im2col(x) @ W + b, reshaped, equals minifer's Conv2d forward pass."""
    x = _rng().standard_normal(X_SHAPE)
    for k, s, p in CONV_CASES:
        conv = _as(layers.Conv2d(3, 4, k, stride=s, padding=p, rng=_rng(4)), F64)
        w, b = conv.params["W"].data, conv.params["b"].data
        out = need(mod, "im2col")(x, k, k, s, p) @ w.reshape(-1, 4) + b      # (N*OH*OW, F)
        want = conv.forward(x)
        compare(f"the convolution im2col(x) @ W + b ({k}x{k}, stride {s}, padding {p})",
                out.reshape(want.shape) if out.size == want.size else out, want)


def col2im_shapes(mod):
    """dx has the input's shape and float32."""
    for k, s, p in CONV_CASES:
        cols = _rng().standard_normal(_cols_shape(k, s, p)).astype(F32)
        check_shape(f"col2im(cols, {X_SHAPE}, {k}, {k}, stride={s}, pad={p})",
                    need(mod, "col2im")(cols, X_SHAPE, k, k, s, p), X_SHAPE)


def col2im_values(mod):
    """dx equals minifer's col2im."""
    for k, s, p in CONV_CASES:
        cols = _rng().standard_normal(_cols_shape(k, s, p))
        compare(f"col2im(cols, x_shape, {k}, {k}, stride={s}, pad={p})", need(mod, "col2im")(cols, X_SHAPE, k, k, s, p),
                reference.col2im(cols, X_SHAPE, k, k, s, p))


def col2im_adjoint(mod):
    """<im2col(x), c> = <x, col2im(c)>: col2im is the transpose of im2col."""
    x = _rng().standard_normal(X_SHAPE)
    for k, s, p in CONV_CASES:
        c = _rng(2).standard_normal(_cols_shape(k, s, p))
        lhs = (reference.im2col(x, k, k, s, p) * c).sum()
        rhs = (x * need(mod, "col2im")(c, X_SHAPE, k, k, s, p)).sum()
        if not abs(lhs - rhs) <= 1e-9 * max(abs(lhs), 1.0):
            raise Failed(f"<im2col(x), c> = {lhs:.6f} but <x, col2im(c)> = {rhs:.6f} ({k}x{k}, stride {s}, "
                         f"padding {p}): col2im is not the adjoint of im2col (a difference of {abs(lhs - rhs):.3g})")


def col2im_gradients(mod):
    """A convolution's dx = col2im(dout @ W.T) agrees with central differences."""
    x = _rng().standard_normal((1, 4, 5, 2))
    for k, s, p in CONV_CASES:
        w = _rng(4).standard_normal((k, k, 2, 3))
        cols = reference.im2col(x, k, k, s, p)
        g = _rng(5).standard_normal((cols.shape[0], 3))                  # dL/dout as (M, F)
        dx = need(mod, "col2im")(g @ w.reshape(-1, 3).T, x.shape, k, k, s, p)
        gradients_agree(f"dx of a {k}x{k} convolution, stride {s}, padding {p}", dx,
                        lambda: float((reference.im2col(x, k, k, s, p) @ w.reshape(-1, 3) * g).sum()), x)


# ---- 6. max-pool backward ------------------------------------------------------------------
POOL_CASES = [((2, 4, 4, 3), 2, 2), ((2, 5, 5, 3), 3, 2), ((1, 4, 5, 2), 2, 1), ((2, 5, 7, 2), 2, 2)]


def _pool_inputs(x_shape, k, s, dtype=F64):
    x = _rng().standard_normal(x_shape).astype(dtype)
    out, arg = reference.maxpool_forward(x, k, s)
    return x, arg, _rng(2).standard_normal(out.shape).astype(dtype)


def maxpool_shapes(mod):
    """dx has the input's shape and float32, for every case of ``POOL_CASES``."""
    for x_shape, k, s in POOL_CASES:
        x, arg, dout = _pool_inputs(x_shape, k, s, F32)
        check_shape(f"dx (window {k}, stride {s})", need(mod, "maxpool_backward")(dout, arg, x_shape, k, s), x_shape)


def maxpool_values(mod):
    """dx equals minifer's maxpool_backward (overlapping windows and ragged edges too)."""
    for x_shape, k, s in POOL_CASES:
        x, arg, dout = _pool_inputs(x_shape, k, s)
        compare(f"dx (window {k}, stride {s}, input {x_shape})",
                need(mod, "maxpool_backward")(dout, arg, x_shape, k, s),
                reference.maxpool_backward(dout, arg, x_shape, k, s))


def maxpool_gradients(mod):
    """dx agrees with central differences of sum(maxpool(x) * dout)."""
    for x_shape, k, s in POOL_CASES:
        x, arg, dout = _pool_inputs(x_shape, k, s)
        gradients_agree(f"dx (window {k}, stride {s})", need(mod, "maxpool_backward")(dout, arg, x_shape, k, s),
                        lambda: float((reference.maxpool_forward(x, k, s)[0] * dout).sum()), x)


# ---- 7. batch-norm backward (training mode) ----------------------------------------------
M, C = 24, 3


def _bn_inputs(dtype=F64):
    """x, g (M, C), gamma (C,) and the batch statistics mu, inv of x."""
    rng = _rng(6)
    x = (rng.standard_normal((M, C)) * 2 + 1).astype(dtype)
    g, gamma = rng.standard_normal((M, C)).astype(dtype), (rng.random(C) + 0.5).astype(dtype)
    mu = x.mean(axis=0)
    return x, g, gamma, mu, (1 / np.sqrt(x.var(axis=0) + 1e-5)).astype(dtype)


def batchnorm_shapes(mod):
    """channel_sums gives (2, C); bn_input_grad gives (m, C) float32."""
    x, g, gamma, mu, inv = _bn_inputs(F32)
    s = need(mod, "channel_sums")(g, x, mu, inv)
    check_shape("channel_sums(g, x, mu, inv)", s, (2, C), dtype=None)
    check_shape("bn_input_grad(...)", need(mod, "bn_input_grad")(g, x, mu, inv, gamma, s[0].astype(F32),
                                                                  s[1].astype(F32)), (M, C))


def batchnorm_values(mod):
    """channel_sums (statistics and gradients) and bn_input_grad equal minifer's."""
    x, g, gamma, mu, inv = _bn_inputs()
    zeros, ones = np.zeros(C), np.ones(C)
    compare("channel_sums(x, x, 0, 1), the statistics sum(x), sum(x^2)",
            need(mod, "channel_sums")(x, x, zeros, ones), reference.channel_sums(x, x, zeros, ones))
    compare("channel_sums(g, x, mu, inv), the gradients dbeta, dgamma",
            need(mod, "channel_sums")(g, x, mu, inv), reference.channel_sums(g, x, mu, inv))
    dbeta, dgamma = reference.channel_sums(g, x, mu, inv)
    compare("bn_input_grad, dx", need(mod, "bn_input_grad")(g, x, mu, inv, gamma, dbeta, dgamma),
            reference.bn_input_grad(g, x, mu, inv, gamma, dbeta, dgamma))


def batchnorm_gradients(mod):
    """dbeta, dgamma and dx agree with central differences of training-mode batch-norm."""
    x, g, gamma, _, _ = _bn_inputs()
    beta = _rng(7).standard_normal(C)

    def loss():                                       # training mode: the batch's own statistics
        xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        return float(((gamma * xhat + beta) * g).sum())

    mu, inv = x.mean(axis=0), 1 / np.sqrt(x.var(axis=0) + 1e-5)
    dbeta, dgamma = need(mod, "channel_sums")(g, x, mu, inv)
    dx = need(mod, "bn_input_grad")(g, x, mu, inv, gamma, dbeta, dgamma)
    gradients_agree("dbeta", dbeta, loss, beta)
    gradients_agree("dgamma", dgamma, loss, gamma)
    gradients_agree("dx", dx, loss, x)
