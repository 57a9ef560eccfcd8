"""The checks of the training exercises: SGD with Nesterov momentum, Adam, and the training loop.
Optimizers are compared with minifer's step by step; all three must train the tiny CNN on
:func:`~.checking.spots` to 90% validation accuracy in three epochs."""
import numpy as np

from .. import optim
from ..fit import train_epoch
from ..layers import Dense, Parameter, SoftmaxCrossEntropy
from ..model import Sequential
from .checking import Failed, accuracy, check_shape, compare, spots, tiny_model
from .layer_checks import need

STEPS = 4
SGD_CASES = [("Nesterov momentum 0.9, weight decay 0.01", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
             ("momentum 0.9", dict(lr=0.1, momentum=0.9)),
             ("no momentum", dict(lr=0.1, momentum=0.0))]
ADAM_CASES = [("lr 0.01", dict(lr=0.01)),
              ("betas (0.8, 0.99), weight decay 0.1", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1))]
LEARN_EPOCHS, LEARN_ACCURACY = 3, 0.9


def _steps(opt_cls, kw, dtype=np.float64):
    """The parameters W (4, 3) and b (3,) (exempt from weight decay) after each of ``STEPS`` steps of
    ``opt_cls(**kw)`` with the same random gradients -> [[W, b] after step 1, ...]."""
    rng = np.random.default_rng(8)
    params = [Parameter(rng.standard_normal((4, 3)).astype(dtype)),
              Parameter(rng.standard_normal(3).astype(dtype), decay=False)]
    opt, out = opt_cls(params, **kw), []
    for _ in range(STEPS):
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(dtype)
        opt.step()
        out.append([p.data.copy() for p in params])
    return out


def _same_steps(opt_cls, ref_cls, cases):
    for case, kw in cases:
        for t, (got, want) in enumerate(zip(_steps(opt_cls, kw), _steps(ref_cls, kw)), 1):
            for name, g, w in zip(("W", "b"), got, want):
                compare(f"{name} after step {t} ({case})", g, w)


def _keeps_shapes(opt_cls, cases):
    for case, kw in cases:
        for name, p in zip(("W", "b"), _steps(opt_cls, kw, np.float32)[-1]):
            check_shape(f"{name} after {STEPS} steps ({case})", p, (4, 3) if name == "W" else (3,))


def _learns(loop, make_opt, ref=None):
    """Train the tiny CNN on spots for ``LEARN_EPOCHS`` epochs with ``loop`` and ``make_opt(params)``;
    fail below ``LEARN_ACCURACY`` on validation spots (then also run ``ref``, for comparison)."""
    x, y = spots(240, seed=0)
    xv, yv = spots(120, seed=1)
    model, loss_fn, rng = tiny_model(), SoftmaxCrossEntropy(), np.random.default_rng(0)
    opt = make_opt(model.params())
    for _ in range(LEARN_EPOCHS):
        loop(model, loss_fn, opt, x, y, 32, rng)
    acc = accuracy(model, xv, yv)
    if not acc >= LEARN_ACCURACY:
        theirs = f" (minifer's own: {_learns(*ref):.0%})" if ref else ""
        raise Failed(f"after {LEARN_EPOCHS} epochs the tiny CNN gets {acc:.0%} of the validation spots right, "
                     f"{LEARN_ACCURACY:.0%} needed{theirs}")
    return acc


# ---- 8. SGD with Nesterov momentum ---------------------------------------------------
def sgd_shapes(mod):
    """W and b keep their shapes and float32 through the steps."""
    _keeps_shapes(need(mod, "SGD"), SGD_CASES)


def sgd_values(mod):
    """W and b equal minifer's SGD after every step, in every case of ``SGD_CASES``."""
    _same_steps(need(mod, "SGD"), optim.SGD, SGD_CASES)


def _sgd(cls):
    return lambda params: cls(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def sgd_learns(mod):
    """SGD with Nesterov momentum trains the tiny CNN (:func:`_learns`)."""
    _learns(train_epoch, _sgd(need(mod, "SGD")), (train_epoch, _sgd(optim.SGD)))


# ---- 9. Adam -----------------------------------------------------------------------------
def adam_shapes(mod):
    """W and b keep their shapes and float32 through the steps."""
    _keeps_shapes(need(mod, "Adam"), ADAM_CASES)


def adam_values(mod):
    """W and b equal minifer's Adam after every step, in every case of ``ADAM_CASES``."""
    _same_steps(need(mod, "Adam"), optim.Adam, ADAM_CASES)


def adam_learns(mod):
    """Adam trains the tiny CNN (:func:`_learns`)."""
    cls = need(mod, "Adam")
    _learns(train_epoch, lambda params: cls(params, lr=3e-3), (train_epoch, lambda params: optim.Adam(params, lr=3e-3)))


# ---- 10. the training loop ---------------------------------------------------------------
N, BATCH = 50, 16
EXPECTED = ["transform", "forward", "loss", "loss_fn.backward", "model.backward", "opt.step"]


def _spy_run(loop):
    """Run ``loop`` for one epoch on 50 samples whose first feature is their index, with a model,
    loss, optimizer and transform that log every call -> (log, x, y, what the loop returned)."""
    log, rng = [], np.random.default_rng(9)
    x = rng.standard_normal((N, 4)).astype(np.float32)
    x[:, 0] = np.arange(N)
    y = rng.integers(0, 3, N)

    class Model(Sequential):
        def forward(self, xb):
            out = super().forward(xb)
            training = all(layer.training for layer in self.layers)
            log.append(("forward", xb[:, 0].astype(int).tolist(), training, np.array(out)))
            return out
        __call__ = forward

        def backward(self, dout, input_grad=False):
            log.append(("model.backward",))
            return super().backward(dout, input_grad)

    class Loss(SoftmaxCrossEntropy):
        def __call__(self, logits, yb):
            value = super().__call__(logits, yb)
            log.append(("loss", float(value), np.asarray(yb).tolist()))
            return value

        def backward(self):
            log.append(("loss_fn.backward",))
            return super().backward()

    class Opt(optim.SGD):
        def step(self):
            log.append(("opt.step",))
            super().step()

    def transform(xb, rng):
        log.append(("transform", xb[:, 0].astype(int).tolist()))
        return xb

    model = Model([Dense(4, 3, rng=np.random.default_rng(0))]).eval()      # the loop must call train()
    returned = loop(model, Loss(), Opt(model.params(), lr=1e-3), x, y, BATCH, rng, transform)
    return log, x, y, returned


def loop_epoch(mod):
    """Every sample once, shuffled, in training mode, batch after batch transform, forward, loss,
    loss backward, model backward, optimizer step, the loss given the batch's labels."""
    log, x, y, _ = _spy_run(need(mod, "train_epoch"))
    forwards = [e for e in log if e[0] == "forward"]
    batches = -(-N // BATCH)
    if len(forwards) != batches:
        raise Failed(f"{len(forwards)} forward passes for {N} samples in batches of {BATCH}; expected {batches}")
    if not all(e[2] for e in forwards):
        raise Failed("the model ran forward in evaluation mode: put it in training mode (model.train())")
    ids = [i for e in forwards for i in e[1]]
    if sorted(ids) != list(range(N)):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        never = sorted(set(range(N)) - set(ids))
        raise Failed(f"every sample must be used once per epoch: used twice {twice[:10]}, never {never[:10]}")
    if ids == list(range(N)):
        raise Failed("the samples came in their stored order every epoch: shuffle them (rng.permutation)")
    names = [e[0] for e in log]
    if names != EXPECTED * batches:
        raise Failed(f"the calls were {', '.join(names[:8])}, ...; expected, batch after batch: "
                     f"{', '.join(EXPECTED)}")
    for f, loss in zip(forwards, (e for e in log if e[0] == "loss")):
        if loss[2] != y[f[1]].tolist():
            raise Failed("the loss got labels that are not those of the batch's samples")


def loop_returns(mod):
    """The mean loss over the samples and the accuracy, as the logged calls give them."""
    log, x, y, returned = _spy_run(need(mod, "train_epoch"))
    if not (isinstance(returned, tuple) and len(returned) == 2):
        raise Failed(f"train_epoch returned {returned!r}, expected (mean loss, accuracy)")
    forwards = [e for e in log if e[0] == "forward"]
    losses = [e for e in log if e[0] == "loss"]
    mean_loss = sum(e[1] * len(e[2]) for e in losses) / N
    acc = sum(int((f[3].argmax(axis=1) == y[f[1]]).sum()) for f in forwards) / N
    compare("the mean loss (over the samples, not the batches)", returned[0], mean_loss, 1e-6)
    compare("the accuracy", returned[1], acc, 1e-9)


def loop_learns(mod):
    """The loop trains the tiny CNN with minifer's SGD (:func:`_learns`)."""
    loop = need(mod, "train_epoch")
    _learns(loop, _sgd(optim.SGD), (train_epoch, _sgd(optim.SGD)))
