"""The plain training loop: one epoch of minibatch gradient descent, every step in view::

    for each batch of a shuffled order of the samples:
        logits = model.forward(xb);  loss = loss_fn(logits, yb)       forward and loss
        model.backward(loss_fn.backward());  opt.step()              gradients, update

``examples/02_tiny_cnn.py`` trains ``zoo.tiny_cnn`` with it; ``python -m minifer.train``
(:mod:`minifer.fer.training`) adds what a long run needs: schedules, mixup, checkpoints, progress.
"""
import numpy as np

from . import backend


def train_epoch(model, loss_fn, opt, x, y, batch_size=32, rng=None, transform=None):
    """One epoch over samples ``x`` (N, ...) and labels ``y`` (N,) (host arrays) in a shuffled order,
    in batches of ``batch_size`` -> (mean loss, accuracy), both over the N samples.

    ``transform(xb, rng)``: applied to each batch before the forward pass (augmentation)."""
    rng = np.random.default_rng() if rng is None else rng
    # exercise: training_loop
    model.train()
    order = rng.permutation(len(x))
    total, correct = 0.0, 0
    for s in range(0, len(x), batch_size):
        idx = order[s:s + batch_size]
        xb = x[idx] if transform is None else transform(x[idx], rng)
        logits = model.forward(backend.to_device(xb))
        total += loss_fn(logits, backend.to_device(y[idx])) * len(idx)
        model.backward(loss_fn.backward())
        opt.step()
        correct += int((backend.to_host(logits).argmax(axis=1) == y[idx]).sum())
    return total / len(x), correct / len(x)
    # end exercise
