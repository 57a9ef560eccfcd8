"""The VGG16 conv base in pretrained files: mapping to minifer names and layout, and conversion.

* :func:`vgg16_state` -- raw ``{name: array}`` (from :func:`minifer.formats.read_weights`)
  -> minifer VGG16 conv-base state dict with keys ``block{b}_conv{i}/W`` (HWIO) and
  ``/b`` (plus ``block{b}_bn{i}/gamma, beta, running_mean, running_var`` for
  ``vgg16_bn``); Keras/tf2onnx names and torchvision ``features.N`` names are both
  recognised, OIHW kernels are transposed;
* :func:`vgg16_meta`, :data:`PREPROCESS` -- metadata and input preprocessing;
* :func:`convert` -- file -> minifer ``.npz`` (what ``python -m minifer.convert`` runs).

The classifier heads (torch ``classifier.*``, Keras ``fc1/fc2/predictions``,
the ONNX file's MRI head) are ignored: only the 13-layer conv base is kept.
"""
import os
import re

import numpy as np

from .._version import __version__
from ..io import save_npz
from .errors import ConvertError, _one_line
from .sniff import format_name, read_weights_and_format

# --------------------------------------------------------------------------- #
# VGG16 architecture facts and preprocessing
# --------------------------------------------------------------------------- #

#: Output channels per conv layer, block by block.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
#: The 13 conv layer names in order.
VGG16_CONV_LAYERS = tuple(
    f"block{b}_conv{i}" for b, outs in enumerate(VGG16_BLOCKS, 1) for i in range(1, len(outs) + 1))
#: Batch-norm layer names of ``vgg16_bn`` (one after each conv).
VGG16_BN_LAYERS = tuple(n.replace("_conv", "_bn") for n in VGG16_CONV_LAYERS)
#: Layers after which a 2x2 / stride-2 max-pool follows.
VGG16_POOL_AFTER = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")


def _conv_channels():
    chans, cin = {}, 3
    for name, cout in zip(VGG16_CONV_LAYERS, [c for outs in VGG16_BLOCKS for c in outs]):
        chans[name] = (cin, cout)
        cin = cout
    return chans


#: ``{layer: (in_channels, out_channels)}`` for the 13 conv layers (3x3 kernels).
VGG16_CONV_CHANNELS = _conv_channels()

#: Indices of the conv modules inside torchvision's ``vgg16().features``.
TORCH_VGG16_CONV_IDX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
#: Indices of the conv modules inside ``vgg16_bn().features`` (BatchNorm at idx + 1).
TORCH_VGG16_BN_CONV_IDX = (0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40)

#: Input preprocessing per weights family. A model input is
#: ``(pixels_0_255[..., channel_order] * scale - mean) / std`` per channel,
#: with ``mean``/``std`` listed in ``channel_order`` order.
PREPROCESS = {
    # Keras/Caffe "caffe" mode: BGR, 0..255, ImageNet mean subtracted.
    "caffe": {"channel_order": "BGR", "scale": 1.0,
              "mean": [103.939, 116.779, 123.68], "std": [1.0, 1.0, 1.0]},
    # torchvision: RGB scaled to 0..1, then normalised.
    "torch": {"channel_order": "RGB", "scale": 1.0 / 255.0,
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
}
_SOURCE_PREPROCESS = {"onnx": "caffe", "h5": "caffe", "torch": "torch"}

# --------------------------------------------------------------------------- #
# Mapping to the minifer VGG16 state dict
# --------------------------------------------------------------------------- #

def _to_hwio(a, layer, prefer_oihw, first):
    cin, cout = VGG16_CONV_CHANNELS[layer]
    a = np.asarray(a, np.float32)
    oihw = a.ndim == 4 and a.shape[0] == cout and a.shape[2:] == (3, 3) and (first or a.shape[1] == cin)
    hwio = a.ndim == 4 and a.shape[3] == cout and a.shape[:2] == (3, 3) and (first or a.shape[2] == cin)
    if oihw and (prefer_oihw or not hwio):
        return np.ascontiguousarray(a.transpose(2, 3, 1, 0))
    if hwio:
        return np.ascontiguousarray(a)
    raise ConvertError(f"{layer}: kernel shape {a.shape} is not VGG16's "
                       f"(3, 3, {cin}, {cout}) HWIO or ({cout}, {cin}, 3, 3) OIHW")


def _vec(a, n, what):
    a = np.asarray(a, np.float32)
    if a.shape != (n,):
        raise ConvertError(f"{what}: shape {a.shape}, expected ({n},)")
    return np.ascontiguousarray(a)


_TORCH_KEY = re.compile(r"^(.*?)features\.(\d+)\.(weight|bias|running_mean|running_var)$")


def _torch_family_state(raw):
    mods, prefix = {}, None
    for k, v in raw.items():
        m = _TORCH_KEY.match(k)
        if not m:
            continue
        if prefix is None:
            prefix = m.group(1)
        if m.group(1) != prefix:
            continue
        mods.setdefault(int(m.group(2)), {})[m.group(3)] = v
    convs = tuple(i for i in sorted(mods) if np.ndim(mods[i].get("weight")) == 4)
    bns = tuple(i for i in sorted(mods) if "running_mean" in mods[i])
    if convs == TORCH_VGG16_CONV_IDX and not bns:
        bn = False
    elif convs == TORCH_VGG16_BN_CONV_IDX and bns == tuple(i + 1 for i in convs):
        bn = True
    else:
        raise ConvertError(f"not a torchvision VGG16 features stack: conv modules at {list(convs)}, "
                           f"batch-norm at {list(bns)}")
    state = {}
    for n, (layer, idx) in enumerate(zip(VGG16_CONV_LAYERS, convs)):
        m = mods[idx]
        if "bias" not in m:
            raise ConvertError(f"{prefix}features.{idx}: conv without bias")
        state[f"{layer}/W"] = _to_hwio(m["weight"], layer, True, n == 0)
        state[f"{layer}/b"] = _vec(m["bias"], VGG16_CONV_CHANNELS[layer][1], f"{prefix}features.{idx}.bias")
        if bn:
            bname = layer.replace("_conv", "_bn")
            b = mods[idx + 1]
            c = VGG16_CONV_CHANNELS[layer][1]
            for src, dst in (("weight", "gamma"), ("bias", "beta"),
                             ("running_mean", "running_mean"), ("running_var", "running_var")):
                if src not in b:
                    raise ConvertError(f"{prefix}features.{idx + 1}: batch-norm without {src}")
                state[f"{bname}/{dst}"] = _vec(b[src], c, f"{prefix}features.{idx + 1}.{src}")
    return state


def _named_family_state(raw, prefer_oihw):
    state = {}
    for n, layer in enumerate(VGG16_CONV_LAYERS):
        pat = re.compile(rf"(?:^|[^A-Za-z0-9]){layer}(?:_\d+)?(?:[/:.]|$)")
        cands = [k for k in raw if pat.search(k)]
        kernels = [k for k in cands if np.ndim(raw[k]) == 4]
        biases = [k for k in cands if np.ndim(raw[k]) == 1]
        if len(kernels) > 1:
            kernels = [k for k in kernels if re.search(r"kernel|_W|convolution|weight", k)] or kernels
        if len(biases) > 1:
            biases = [k for k in biases if re.search(r"bias|_b[_:]|Squeeze", k)] or biases
        if len(kernels) != 1 or len(biases) != 1:
            raise ConvertError(f"{layer}: expected one kernel and one bias, found kernels "
                               f"{kernels[:3]} and biases {biases[:3]}")
        state[f"{layer}/W"] = _to_hwio(raw[kernels[0]], layer, prefer_oihw, n == 0)
        state[f"{layer}/b"] = _vec(raw[biases[0]], VGG16_CONV_CHANNELS[layer][1], biases[0])
    return state


def _vgg16_state(raw, source):
    source = format_name(source)
    if any(_TORCH_KEY.match(k) for k in raw):
        return _torch_family_state(raw), "torch"
    if any(re.search(r"(?:^|[^A-Za-z0-9])block1_conv1(?:_\d+)?(?:[/:.]|$)", k) for k in raw):
        return _named_family_state(raw, prefer_oihw=source != "h5"), "caffe"
    raise ConvertError(f"no VGG16 conv layers found in the {source} weights "
                       "(looked for block1_conv1... or features.0.weight)")


def vgg16_state(raw, source):
    """Map raw weights to minifer's VGG16 conv-base state dict.

    ``source`` is ``"onnx"``, ``"h5"`` (Keras) or ``"torch"``. Returns
    ``{"block{b}_conv{i}/W": (3, 3, in, out) float32, "block{b}_conv{i}/b":
    (out,)}`` for the 13 conv layers, plus ``block{b}_bn{i}/gamma``,
    ``beta``, ``running_mean``, ``running_var`` for a ``vgg16_bn`` checkpoint.
    Keras/tf2onnx names (``block1_conv1``...) and torchvision names
    (``features.N.weight``) are both recognised; OIHW kernels are transposed
    to HWIO (the layout is checked against VGG16's shapes). Classifier/head
    weights are ignored. Raises :class:`ConvertError` if the weights are not
    a VGG16 conv base.
    """
    return _vgg16_state(raw, source)[0]


def vgg16_kind(state):
    """``"vgg16_bn-base"`` when the state has batch-norm layers, else ``"vgg16-base"``."""
    return "vgg16_bn-base" if any("_bn" in k for k in state) else "vgg16-base"


def vgg16_layers(state):
    """Layer names in forward order (conv, and its batch-norm for vgg16_bn)."""
    bn = vgg16_kind(state) == "vgg16_bn-base"
    out = []
    for conv, bnl in zip(VGG16_CONV_LAYERS, VGG16_BN_LAYERS):
        out += [conv, bnl] if bn else [conv]
    return out


def vgg16_meta(state, source, source_name, family=None):
    """Metadata for a converted VGG16 base (what :func:`convert` stores).

    ``preprocess`` follows the weights family: Keras/ONNX -> Caffe BGR mean
    subtraction, torchvision -> RGB/255 normalised (see :data:`PREPROCESS`).
    """
    source = format_name(source)
    family = family or _SOURCE_PREPROCESS[source]
    kind = vgg16_kind(state)
    meta = {
        "kind": kind,
        "source": os.path.basename(os.fspath(source_name)),
        "source_format": source,
        "preprocess": dict(PREPROCESS[family]),
        "layers": vgg16_layers(state),
        "kernel_layout": "HWIO",
        "pool_after": list(VGG16_POOL_AFTER),
        "minifer_version": __version__,
    }
    if kind == "vgg16_bn-base":
        meta["bn_eps"] = 1e-5  # torchvision BatchNorm2d default
    return meta


def convert(src, dst, format="auto", float16=False):
    """Convert a VGG16 weights file to a minifer ``.npz``; returns a summary dict.

    Keys of the summary: ``meta``, ``layers`` (conv count), ``params``,
    ``bytes`` (size of the written file), ``format``.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    raw, fmt = read_weights_and_format(src, format)
    state, family = _vgg16_state(raw, fmt)
    del raw
    meta = vgg16_meta(state, fmt, src, family)
    try:
        save_npz(dst, state, meta, dtype=np.float16 if float16 else None)
    except OSError as e:
        raise ConvertError(f"cannot write {dst}: {e.strerror or _one_line(e)}") from None
    return {"meta": meta, "format": fmt, "layers": len(VGG16_CONV_LAYERS),
            "params": int(sum(a.size for a in state.values())),
            "bytes": os.path.getsize(dst)}
