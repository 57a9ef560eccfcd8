"""Read pretrained VGG16 weights from ONNX, Keras HDF5 or PyTorch files and
convert them into a minifer ``.npz`` weights file.

Formats and what each needs:

* **ONNX** (``.onnx``) -- built in. The protobuf is parsed by a small
  wire-format reader (:mod:`minifer.formats.protobuf`; no ``onnx`` package).
  Weights are the ``graph.initializer`` tensors (``raw_data`` or the typed
  ``*_data`` fields). Models that keep tensors in external files are refused
  with a clear message.
* **Keras HDF5** (``.h5``/``.hdf5``, also Keras 3 ``.weights.h5`` and
  ``.keras``) -- needs ``h5py`` (``pip install h5py``, or the ``minifer[h5]``
  extra). Both ``save_weights`` files such as
  ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` and full-model files
  (``model_weights/`` group) are read. Kernels are already HWIO.
* **PyTorch** (``.pth``/``.pt``/``.bin``) -- built in; never imports torch and
  never runs code from the file. Both the zip format (torch >= 1.6) and the
  legacy pickle-stream format (e.g. ``vgg16-397923af.pth``) are read with a
  restricted unpickler that only accepts tensors, storages and ``OrderedDict``;
  anything else (``os.system``, a pickled ``nn.Module``...) raises
  :class:`ConvertError` before it could run. The pre-1.0 tar format is refused.

Public API:

* :func:`read_onnx`, :func:`read_keras_h5`, :func:`read_torch` -- file ->
  ``{name: np.ndarray}`` (floats as float32), raw names as stored; defined in
  :mod:`minifer.formats` (one module per format) and re-exported here;
* :func:`detect_format`, :func:`read_weights` -- dispatch by magic bytes and
  extension;
* :func:`vgg16_state` -- raw dict -> minifer VGG16 conv-base state dict with
  keys ``block{b}_conv{i}/W`` (HWIO) and ``/b`` (plus ``block{b}_bn{i}/gamma,
  beta,running_mean,running_var`` for ``vgg16_bn``);
* :func:`vgg16_meta`, :data:`PREPROCESS` -- metadata and input preprocessing;
* :func:`convert` -- file -> ``.npz`` (what the CLI runs);
* :func:`download` -- fetch a pinned weights file into ``~/.cache/minifer``.

Command line::

    python -m minifer.convert SRC DST.npz [--format auto|onnx|h5|torch] [--float16]

The classifier heads (torch ``classifier.*``, Keras ``fc1/fc2/predictions``,
the ONNX file's MRI head) are ignored: only the 13-layer conv base is kept.
"""
import argparse
import hashlib
import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

from .formats import read_keras_h5, read_onnx, read_torch
from .formats.common import _is_tar, _read_head
from .formats.errors import ConvertError, _one_line
from .formats.torch_pickle import _TORCH_LEGACY_HEAD
from .io import WeightsError, atomic_write, save_npz


FORMATS = ("onnx", "h5", "torch")

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

_SOURCE_ALIASES = {"onnx": "onnx", "h5": "h5", "hdf5": "h5", "keras": "h5",
                   "torch": "torch", "pytorch": "torch", "pth": "torch", "pt": "torch"}


def _norm_source(source):
    s = _SOURCE_ALIASES.get(str(source).lower())
    if s is None:
        raise ValueError(f"unknown source format {source!r}; use one of {', '.join(FORMATS)}")
    return s



# --------------------------------------------------------------------------- #
# Format detection
# --------------------------------------------------------------------------- #

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXT_FORMAT = {".onnx": "onnx", ".h5": "h5", ".hdf5": "h5", ".keras": "h5",
               ".pth": "torch", ".pt": "torch", ".bin": "torch", ".ckpt": "torch", ".tar": "torch"}
_READERS = {"onnx": read_onnx, "h5": read_keras_h5, "torch": read_torch}



def _sniff(path, head):
    """Format by content, or None when the magic bytes say nothing."""
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, ValueError):
            raise ConvertError(f"{path}: corrupt zip archive") from None
        if any(n.endswith("/data.pkl") for n in names):
            return "torch"
        if any(n.endswith(".weights.h5") for n in names):
            return "h5"
        raise ConvertError(f"{path}: zip archive that is neither a PyTorch checkpoint "
                           "nor a Keras .keras file")
    if head.startswith(_TORCH_LEGACY_HEAD):
        return "torch"
    if head.startswith(b"\x80"):
        raise ConvertError(f"{path}: Python pickle that is not a PyTorch checkpoint")
    if _is_tar(head):
        return "torch"
    if head[:1] == b"\x08":  # ModelProto field 1 (ir_version), as ONNX writers emit it first
        return "onnx"
    return None


_FORMAT_NAMES = {"onnx": "ONNX", "h5": "HDF5", "torch": "PyTorch"}


def detect_format(path):
    """Return ``"onnx"``, ``"h5"`` or ``"torch"`` for a weights file.

    Magic bytes decide (HDF5 signature, zip with ``data.pkl``, the legacy
    torch pickle header, ONNX's leading ``ir_version`` field); the extension
    is used when content says nothing. A file whose content contradicts its
    extension is rejected with :class:`ConvertError`.
    """
    path = os.fspath(path)
    head = _read_head(path, 512)
    if not head:
        raise ConvertError(f"{path}: empty file")
    by_ext = _EXT_FORMAT.get(Path(path).suffix.lower())
    by_magic = _sniff(path, head)
    if by_magic and by_ext and by_magic != by_ext:
        raise ConvertError(f"{path}: the extension says {_FORMAT_NAMES[by_ext]} but the content "
                           f"is {_FORMAT_NAMES[by_magic]}")
    fmt = by_magic or by_ext
    if fmt is None:
        raise ConvertError(f"{path}: unrecognised weights format (expected ONNX, Keras HDF5 or PyTorch)")
    return fmt


def read_weights(path, format="auto"):
    """Read any supported weights file -> ``{name: array}``.

    ``format`` is ``"auto"`` (see :func:`detect_format`), ``"onnx"``,
    ``"h5"`` or ``"torch"``; with an explicit format, a file whose magic
    bytes say otherwise is rejected.
    """
    return _read_as(os.fspath(path), format)[0]


def _read_as(path, format):
    if format in (None, "auto"):
        fmt = detect_format(path)
    else:
        fmt = _norm_source(format)
        head = _read_head(path, 512)
        if not head:
            raise ConvertError(f"{path}: empty file")
        magic = _sniff(path, head)
        if magic is not None and magic != fmt:
            raise ConvertError(f"{path}: asked to read {_FORMAT_NAMES[fmt]} but the content "
                               f"is {_FORMAT_NAMES[magic]}")
    try:
        return _READERS[fmt](path), fmt
    except ConvertError:
        raise
    except Exception as e:  # any other failure on untrusted bytes: one clear line
        raise ConvertError(f"{path}: corrupt {_FORMAT_NAMES[fmt]} file "
                           f"({type(e).__name__}: {_one_line(e)[:200]})") from None


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
    source = _norm_source(source)
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


def _minifer_version():
    try:
        import importlib
        pkg = importlib.import_module(__package__ or "minifer")
        return str(getattr(pkg, "__version__", "0.1.0"))
    except Exception:
        return "0.1.0"


def vgg16_meta(state, source, source_name, family=None):
    """Metadata for a converted VGG16 base (what :func:`convert` stores).

    ``preprocess`` follows the weights family: Keras/ONNX -> Caffe BGR mean
    subtraction, torchvision -> RGB/255 normalised (see :data:`PREPROCESS`).
    """
    source = _norm_source(source)
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
        "minifer_version": _minifer_version(),
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
    raw, fmt = _read_as(src, format)
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


# --------------------------------------------------------------------------- #
# Download helper (never used by the tests: there is no network there)
# --------------------------------------------------------------------------- #

#: Published weights files with the checksum that can be verified.
PRETRAINED = {
    "vgg16-keras-notop": {
        "url": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
               "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5": "6d6bbae143d832006294945121d1f1fc", "format": "h5"},
    "vgg16-torch": {
        "url": "https://download.pytorch.org/models/vgg16-397923af.pth",
        "sha256": "397923af", "format": "torch"},  # torch hub: name holds the sha256 prefix
}
_HUB_HASH = re.compile(r"-([a-f0-9]{6,64})\.")


def default_cache_dir():
    """``$MINIFER_CACHE`` or ``~/.cache/minifer``."""
    return Path(os.environ.get("MINIFER_CACHE") or Path.home() / ".cache" / "minifer")


def _checks_for(url, sha256, md5):
    if sha256 is None and md5 is None:
        for entry in PRETRAINED.values():
            if entry["url"] == url:
                sha256, md5 = entry.get("sha256"), entry.get("md5")
        if sha256 is None and md5 is None:
            m = _HUB_HASH.search(url.rsplit("/", 1)[-1])
            if m:
                sha256 = m.group(1)
    if sha256 is None and md5 is None:
        raise ConvertError(f"no checksum known for {url}; pass sha256= (full or a prefix) or md5=")
    return (sha256 or "").lower(), (md5 or "").lower()


def _verify(sha_hex, md5_hex, want_sha, want_md5, what):
    if want_sha and not sha_hex.startswith(want_sha):
        raise ConvertError(f"{what}: sha256 {sha_hex[:16]}... does not match {want_sha}")
    if want_md5 and md5_hex != want_md5:
        raise ConvertError(f"{what}: md5 {md5_hex} does not match {want_md5}")


def download(url, sha256=None, cache_dir=None, *, md5=None, timeout=60):
    """Fetch ``url`` into ``cache_dir`` (default ``~/.cache/minifer``), verified.

    ``sha256`` may be the full hex digest or a prefix (the torch hub
    convention: ``vgg16-397923af.pth`` carries the first 8 hex digits); ``md5``
    is used for the Keras file, whose publisher lists only an md5. Without
    either, a URL from :data:`PRETRAINED` uses its pinned checksum and a
    hub-style file name its embedded prefix; anything else is refused. The
    file is written atomically and reused when already cached and valid.
    Returns the local :class:`~pathlib.Path`.
    """
    import urllib.request

    want_sha, want_md5 = _checks_for(url, sha256, md5)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = url.rsplit("/", 1)[-1].split("?")[0] or "download"
    dst = folder / name
    if dst.is_file():
        h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
        with open(dst, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h_sha.update(chunk)
                h_md5.update(chunk)
        try:
            _verify(h_sha.hexdigest(), h_md5.hexdigest(), want_sha, want_md5, str(dst))
            return dst
        except ConvertError:
            pass  # stale or corrupt cache entry: download again

    def write(f):
        h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout) as r:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
                h_sha.update(chunk)
                h_md5.update(chunk)
        _verify(h_sha.hexdigest(), h_md5.hexdigest(), want_sha, want_md5, url)

    try:
        atomic_write(dst, write, suffix=".part")
    except OSError as e:
        raise ConvertError(f"download of {url} failed: {_one_line(e)}") from None
    return dst


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #

_PROG = "python -m minifer.convert"


class _ArgParser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser():
    p = _ArgParser(
        prog=_PROG,
        description="Convert pretrained VGG16 weights (ONNX, Keras .h5, PyTorch .pth) "
                    "to a minifer .npz weights file (13 conv layers, HWIO kernels).")
    p.add_argument("src", help="source weights file")
    p.add_argument("dst", help="output .npz file (written atomically)")
    p.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                   help="source format (default: detect from magic bytes/extension)")
    p.add_argument("--float16", action="store_true",
                   help="store arrays as float16 (half the size; loads back as float32)")
    return p


def main(argv=None):
    """CLI entry point; returns the exit code (0 ok, 1 bad input, 2 usage)."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as e:
        print(f"{_PROG}: error: {_one_line(e)} (see --help)", file=sys.stderr)
        return 2
    try:
        s = convert(args.src, args.dst, format=args.format, float16=args.float16)
    except (WeightsError, OSError) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else e
        extra = f": {e.filename}" if isinstance(e, OSError) and e.filename else ""
        print(f"{_PROG}: error: {_one_line(msg)}{extra}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # never show a traceback for bad input
        print(f"{_PROG}: error: cannot convert {args.src} ({type(e).__name__}: {_one_line(e)[:300]})",
              file=sys.stderr)
        return 1
    meta = s["meta"]
    print(f"{meta['source']} ({s['format']}) -> {args.dst}: {meta['kind']}, {s['layers']} conv layers, "
          f"{s['params']:,} parameters, {s['bytes'] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
