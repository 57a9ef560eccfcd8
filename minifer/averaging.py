"""Weight averaging of trained models (SWA / snapshot averaging) and batch-norm re-estimation.

Averaging the weights of a few checkpoints from the end of one training run
(Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima") often
generalises better than any single checkpoint. Batch-norm's running statistics
do not average: the averaged weights give other activations, so
:func:`update_bn` measures them again with one pass over training data.
"""
import numpy as np

from . import backend
from .layers.norm import BatchNorm
from .model import build_from_architecture


def average_weights(models):
    """A new model of the same architecture whose parameters are the members' mean.

    Buffers (batch-norm statistics) are averaged too, as a starting point;
    call :func:`update_bn` afterwards for the right ones.
    """
    if not models:
        raise ValueError("nothing to average")
    arch = models[0].architecture()
    if any(m.architecture() != arch for m in models[1:]):
        raise ValueError("weight averaging needs models of one architecture")
    states = [m.state_dict() for m in models]
    avg = {k: np.mean([s[k].astype(np.float64) for s in states], axis=0).astype(backend.DTYPE)
           for k in states[0]}
    out = build_from_architecture(arch, models[0].name)
    out.load_state_dict(avg)
    out.meta = dict(models[0].meta)
    return out.eval()


def update_bn(model, batches):
    """Re-estimate every batch-norm layer's running mean and variance.

    ``batches`` yields float32 NHWC model inputs (training images, no
    augmentation needed). Each BN layer's statistics become the plain average
    over all batches (momentum 1/k for the k-th batch); other layers stay in
    eval mode (dropout off). Returns the model, in eval mode.
    """
    bns = [l for l in model.layers if isinstance(l, BatchNorm)]
    saved = [l.momentum for l in bns]
    model.eval()
    for l in bns:
        l.training = True
    try:
        for k, xb in enumerate(batches, 1):
            for l in bns:
                l.momentum = 1.0 / k
            model.forward(backend.to_device(xb, backend.DTYPE))
            for l in model.layers:
                l.cache = None
    finally:
        for l, mom in zip(bns, saved):
            l.momentum = mom
    return model.eval()
