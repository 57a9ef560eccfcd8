r"""Transfer learning: load converted VGG16 weights, freeze blocks, per-block learning rates.

    from minifer import zoo
    from minifer.fer import transfer
    from minifer.fer.classes import CLASSES, gray_preprocess
    model = zoo.vgg16(blocks=3, classes=CLASSES)
    model.meta["preprocess"] = gray_preprocess(m, s)
    print(transfer.load_pretrained(model, "vgg16_imagenet.npz"))   # blocks 1-3, gray-folded
    transfer.freeze_blocks(model, 2)                # block1_* and block2_* untrainable
    transfer.set_block_lr(model, {3: 0.1, "head": 1.0})

The weights file is what ``python -m minifer.convert SRC DST.npz`` writes (meta
``kind`` ``"vgg16-base"``; keys ``block{b}_conv{i}/W`` HWIO and ``/b``). Every
``block*_conv*`` layer present in both the model and the file is loaded, so a
model built with ``blocks=4`` takes blocks 1-4 and ignores block 5.

Gray-channel folding (``gray="sum"``)
-------------------------------------
ImageNet VGG16 wants a colour image preprocessed per input channel ``c`` (in the
file's ``preprocess.channel_order``) as::

    v_c = (p_c * sv - mu_c) / sig_c        # caffe: sv = 1, mu = (103.939, 116.779, 123.68), sig = 1

with pixels ``p_c`` in 0..255. A minifer gray model is fed instead::

    x = (p * sm - m) / s                   # sm = 1/255, (m, s) = model.meta["preprocess"]

For a gray face every colour channel holds the same pixel, ``p_c = p = (s x + m) / sm``,
so the first conv of the original network computes, for output ``o``::

    y_o = b_o + sum_{h,w,c} W[h,w,c,o] * v_c
        = b_o + sum_{h,w,c} W[h,w,c,o] * ((sv / sm) (s x + m) - mu_c) / sig_c
        = sum_{h,w} W'[h,w,0,o] x  +  b'_o

with the folded one-channel layer::

    W'[h,w,0,o] = (sv * s / sm) * sum_c W[h,w,c,o] / sig_c
    b'_o        = b_o + sum_{h,w,c} W[h,w,c,o] * (sv * m / sm - mu_c) / sig_c

For the caffe preprocessing (``sv = sig_c = 1``, ``sm = 1/255``) this is
``W' = 255 s sum_c W_c`` and ``b' = b - sum_c mu_c sum_{h,w} W_c + 255 m sum_{h,w,c} W``:
the shared README's fold ``(sum_c W_c, b - sum_c mu_c sum_{h,w} W_c)`` for raw 0..255
input, composed with ``p = 255 (s x + m)``. The equality is exact except in the
one-pixel border: zero padding is ``x = 0`` (pixel ``255 m``) here but ``v_c = 0``
(pixel ``mu_c``) in the original.

A model whose first conv already has 3 input channels gets the weights unchanged
and must be fed the file's own preprocessing (returned in the report).
"""
import os
import re

import numpy as np

from .. import backend
from ..io import WeightsError, load_npz

KINDS = ("vgg16-base", "vgg16_bn-base")
GRAY_MODES = ("sum",)
_BLOCK_RE = re.compile(r"^block(\d+)_")
_LOADABLE_RE = re.compile(r"^block\d+_(conv|bn)\d+$")


def block_of(name):
    """Block index of a layer name ``block{b}_...`` -> int, else None (head layers)."""
    m = _BLOCK_RE.match(name or "")
    return int(m.group(1)) if m else None


class TransferReport(dict):
    """The result of :func:`load_pretrained`: a dict that prints as one line."""

    def __str__(self):
        fold = f", first conv gray-folded ({self['gray']})" if self.get("folded") else ""
        extra = f"; unused: {_span(self['skipped'])}" if self.get("skipped") else ""
        miss = f"; left random: {_span(self['missing'])}" if self.get("missing") else ""
        return (f"loaded {_span(self['layers'])}, {self['params']:,} parameters from "
                f"{self['source']}{fold}{extra}{miss}")


def _span(names):
    """``["a", "b", "c"]`` -> ``"3 layers (a..c)"``."""
    if len(names) == 1:
        return f"1 layer ({names[0]})"
    return f"{len(names)} layers ({names[0]}..{names[-1]})"


# --------------------------------------------------------------------------- #
# loading
# --------------------------------------------------------------------------- #
def _gray_preprocess(model, mean, std):
    """(scale, m, s) of the model's gray input ``(p * scale - m) / s``."""
    pre = (getattr(model, "meta", None) or {}).get("preprocess") or {}
    scale = float(pre.get("scale", 1.0 / 255.0))
    if mean is None:
        mean = pre.get("mean")
    if std is None:
        std = pre.get("std", 1.0)
    if mean is None:
        raise WeightsError("folding ImageNet weights into a gray first layer needs the model's input "
                           "normalisation: set model.meta['preprocess'] = {'scale': 1/255, 'mean': [m], "
                           "'std': [s]} before loading (or pass mean=, std=)")
    m = np.ravel(np.asarray(mean, np.float64))
    s = np.ravel(np.asarray(std, np.float64))
    if m.size != 1 or s.size != 1 or not s[0] > 0 or not np.isfinite([m[0], s[0], scale]).all():
        raise WeightsError(f"gray model preprocess must be one finite mean and a positive std, "
                           f"got mean {mean!r}, std {std!r}")
    return scale, float(m[0]), float(s[0])


def fold_gray(W, b, src_pre, scale, mean, std):
    """Fold a 3-channel first conv + the weights' preprocessing into a 1-channel conv.

    ``W`` (kH, kW, C, F), ``b`` (F,); ``src_pre`` the file's ``preprocess`` dict
    (``scale``, per-channel ``mean``/``std``); the gray input is
    ``(pixel * scale - mean) / std``. Returns float32 ``(W' (kH, kW, 1, F), b' (F,))``
    (see the module docstring for the derivation).
    """
    W = np.asarray(W, np.float64)
    b = np.zeros(W.shape[-1]) if b is None else np.asarray(b, np.float64)
    c = W.shape[2]
    sv = float(src_pre.get("scale", 1.0))
    mu = np.broadcast_to(np.asarray(src_pre.get("mean", 0.0), np.float64), (c,))
    sig = np.broadcast_to(np.asarray(src_pre.get("std", 1.0), np.float64), (c,))
    Wc = W / sig[None, None, :, None]                          # W_c / sig_c
    W1 = (sv * std / scale) * Wc.sum(axis=2, keepdims=True)
    b1 = b + np.einsum("hwcf,c->f", Wc, sv * mean / scale - mu)
    return W1.astype(np.float32), b1.astype(np.float32)


def load_pretrained(model, path, gray="sum", mean=None, std=None):
    """Load a converted VGG16 ``.npz`` into the model's ``block*_conv*`` layers -> report.

    Layers present in both are loaded (a 4-block model takes blocks 1-4). If the
    model's first conv has 1 input channel and the file's has 3, the kernel and
    the file's preprocessing are folded into it (``gray="sum"``, exact; see the
    module docstring) using the model's gray normalisation from
    ``model.meta["preprocess"]`` (or ``mean``/``std``). Returns a
    :class:`TransferReport` (``layers``, ``params``, ``folded``, ``skipped``,
    ``missing``, ``preprocess``) and records it in ``model.meta["pretrained"]``.
    Raises :class:`minifer.io.WeightsError` for a file that is not a converted
    VGG16 base or does not fit the model.
    """
    arrays, meta = load_npz(path)
    return load_pretrained_state(model, arrays, meta, gray=gray, mean=mean, std=std,
                                 source=os.path.basename(os.fspath(path)))


def load_pretrained_state(model, state, meta, gray="sum", mean=None, std=None, source="<state>"):
    """:func:`load_pretrained` from an in-memory ``(state, meta)`` (as :func:`minifer.formats.vgg16.convert`
    builds them). Everything is checked before anything is written: a file that
    does not fit leaves the model unchanged."""
    src_pre = _check_source(meta, gray, source)
    plan = _check_layers(model, state, meta["kind"], source)
    folded = _fold_first_conv(model, plan, src_pre, mean, std)
    _check_shapes(plan, source)
    params = _write(plan)
    file_layers = _file_layers(state)
    model_layers = _model_layers(model)
    report = TransferReport(
        source=source, kind=meta["kind"], layers=[layer.name for layer, _, _ in plan], params=params,
        folded=folded, gray=gray if folded else None,
        skipped=[n for n in file_layers if n not in {l.name for l in model.layers}],
        missing=[n for n in model_layers if n not in file_layers],
        preprocess=dict(src_pre))
    model.meta = dict(getattr(model, "meta", None) or {})
    model.meta["pretrained"] = {k: report[k] for k in ("source", "kind", "layers", "params", "folded", "gray")}
    return report


def _file_layers(state):
    """Names of the loadable layers (``block*_conv*``, ``block*_bn*``) in a state dict, sorted."""
    return sorted({k.split("/", 1)[0] for k in state if _LOADABLE_RE.match(k.split("/", 1)[0])})


def _model_layers(model):
    """Names of the model's loadable layers, in order."""
    return [l.name for l in model.layers if _LOADABLE_RE.match(l.name or "")]


def _check_source(meta, gray, source):
    """The file must be a converted VGG16 base with preprocessing -> its ``preprocess`` dict."""
    kind = meta.get("kind")
    if kind not in KINDS:
        what = ("a minifer model file (use minifer.model.load_model)" if "architecture" in meta
                else f"a file of kind {kind!r}")
        raise WeightsError(f"{source}: not converted VGG16 weights but {what}; "
                           "make one with: python -m minifer.convert SRC DST.npz")
    src_pre = meta.get("preprocess")
    if not isinstance(src_pre, dict):
        raise WeightsError(f"{source}: converted weights have no 'preprocess' metadata")
    if gray not in GRAY_MODES:
        raise ValueError(f"gray={gray!r}: use one of {GRAY_MODES}")
    return src_pre


def _check_layers(model, state, kind, source):
    """The layers in both -> ``[(layer, {param: array}, {buffer: array})]`` in model order.

    Every parameter and buffer of a matched layer must be in the file, and the
    file may hold nothing the layer has no place for (shapes are checked after
    the gray fold, by :func:`_check_shapes`).
    """
    file_layers = _file_layers(state)
    by_name = {l.name: l for l in model.layers}
    model_layers = _model_layers(model)
    unmatched_bn = [n for n in file_layers if "_bn" in n and n not in by_name
                    and block_of(n) in {block_of(x) for x in model_layers}]
    if unmatched_bn:
        raise WeightsError(f"{source}: {kind} has batch-norm layers ({unmatched_bn[0]}, ...) that the "
                           "model lacks; build the conv base with batch_norm=True")
    plan = []
    for name in model_layers:
        if name not in file_layers:
            continue
        layer = by_name[name]
        params = _arrays(state, name, layer.params, source)
        extra = [k for k in state if k.startswith(name + "/") and k.split("/", 1)[1] not in layer.params
                 and k.split("/", 1)[1] not in layer.buffers]
        if extra:
            raise WeightsError(f"{source}: {extra[0]} has no place in model layer {name} "
                               "(e.g. a conv bias for a bias-free conv)")
        plan.append((layer, params, _arrays(state, name, layer.buffers, source)))
    if not plan:
        raise WeightsError(f"{source}: no layer in common with the model (model has "
                           f"{model_layers[:3] or 'no block*_conv* layers'})")
    return plan


def _arrays(state, name, wanted, source):
    """``{k: float32 state[name/k]}`` for every key of ``wanted``; WeightsError if one is missing."""
    out = {}
    for k in wanted:
        key = f"{name}/{k}"
        if key not in state:
            raise WeightsError(f"{source}: {key} is missing")
        out[k] = np.asarray(state[key], np.float32)
    return out


def _fold_first_conv(model, plan, src_pre, mean, std):
    """Fold a 3-channel first conv into the model's 1-channel one, in the plan -> True if folded."""
    first = next((n for n in _model_layers(model) if "_conv" in n), None)
    for layer, params, _ in plan:
        if layer.name == first and "W" in params:
            if layer.params["W"].shape[2] == 1 and params["W"].shape[2] == 3:
                params["W"], params["b"] = fold_gray(params["W"], params.get("b"), src_pre,
                                                     *_gray_preprocess(model, mean, std))
                return True
    return False


def _check_shapes(plan, source):
    """Every array must have the shape of the model's parameter or buffer."""
    for layer, params, buffers in plan:
        for arrays, current in ((params, layer.params), (buffers, layer.buffers)):
            for k, a in arrays.items():
                want = tuple(current[k].shape)
                if a.shape != want:
                    raise WeightsError(f"{source}: {layer.name}/{k} has shape {a.shape}, model wants {want}")


def _write(plan):
    """Copy the checked arrays into the layers (on the active device) -> number of parameters."""
    params = 0
    for layer, new, buffers in plan:
        for k, a in new.items():
            layer.params[k].data = backend.to_device(a, backend.DTYPE)
            layer.params[k].grad = None
            params += a.size
        for k, a in buffers.items():
            layer.buffers[k] = backend.to_device(a, backend.DTYPE)
    return int(params)


# --------------------------------------------------------------------------- #
# freezing and per-block learning rates
# --------------------------------------------------------------------------- #
def _block_layers(model):
    out = {}
    for layer in model.layers:
        b = block_of(layer.name)
        if b is not None:
            out.setdefault(b, []).append(layer)
    if not out:
        raise ValueError(f"model {getattr(model, 'name', '')!r} has no block{{b}}_* layers")
    return out


def freeze_blocks(model, upto):
    """Freeze every parameter of layers ``block1_*`` .. ``block{upto}_*``; returns their names.

    ``upto=0`` freezes nothing. Frozen parameters are skipped by the optimizers,
    and :meth:`Sequential.backward` stops below the lowest trainable layer.
    """
    upto = int(upto)
    if upto < 0:
        raise ValueError(f"freeze_blocks: upto must be >= 0, got {upto}")
    if upto == 0:
        return []
    names = []
    for b, layers in sorted(_block_layers(model).items()):
        if b <= upto:
            for layer in layers:
                layer.freeze(True)
                for p in layer.params.values():
                    p.grad = None
                names += [layer.name] if layer.params else []
    return names


def unfreeze(model):
    """Make every parameter of the model trainable again."""
    for layer in model.layers:
        layer.freeze(False)


def set_block_lr(model, scales):
    """Per-group learning-rate factors (``Parameter.lr_scale``).

    ``scales`` maps a block index (``1`` -> ``block1_*``) or ``"base"`` (every
    block) or ``"head"`` (every layer outside the blocks) to a factor; block
    indices override ``"base"``. Returns ``{layer name: factor}`` for the layers set.
    """
    blocks = _block_layers(model)
    done = {}
    for key in scales:
        if key not in ("base", "head") and not (isinstance(key, (int, np.integer)) and int(key) in blocks):
            raise ValueError(f"set_block_lr: unknown group {key!r}; use 'base', 'head' or a block in "
                             f"{sorted(blocks)}")
    for layer in model.layers:
        b = block_of(layer.name)
        if b is None:
            scale = scales.get("head")
        else:
            scale = scales.get(b, scales.get("base"))
        if scale is None or not layer.params:
            continue
        scale = float(scale)
        if not scale >= 0:
            raise ValueError(f"set_block_lr: factor must be >= 0, got {scale}")
        for p in layer.params.values():
            p.lr_scale = scale
        done[layer.name] = scale
    return done
