"""Read pretrained VGG16 weights from ONNX, Keras HDF5 or PyTorch files and
convert them into a minifer ``.npz`` weights file.

Formats and what each needs:

* **ONNX** (``.onnx``) -- built in. The protobuf is parsed by a small
  wire-format reader here (no ``onnx`` package). Weights are the
  ``graph.initializer`` tensors (``raw_data`` or the typed ``*_data`` fields).
  Models that keep tensors in external files are refused with a clear message.
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
  ``{name: np.ndarray}`` (floats as float32), raw names as stored;
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
import io
import mmap
import os
import pickle
import pickletools
import re
import sys
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .io import WeightsError, atomic_write, save_npz


class ConvertError(WeightsError):
    """A source weights file is missing, corrupt, unsafe or not what it claims.

    A ``ValueError`` (via :class:`minifer.io.WeightsError`); the message is one line.
    """


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


def _one_line(msg):
    return " ".join(str(msg).split())


# --------------------------------------------------------------------------- #
# ONNX: minimal protobuf wire-format reader
# --------------------------------------------------------------------------- #

class _PBError(Exception):
    def __init__(self, msg, truncated=False):
        super().__init__(msg)
        self.truncated = truncated


def _pb_varint(buf, pos, end):
    result = shift = 0
    while True:
        if pos >= end:
            raise _PBError(f"varint runs past the end at byte {pos}", truncated=True)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _PBError(f"varint longer than 10 bytes at byte {pos}")


def _pb_fields(buf, pos, end):
    """Yield ``(field_number, wire_type, value)`` for one message ``buf[pos:end]``.

    ``value`` is an int for varints and ``(start, stop)`` byte offsets for
    length-delimited, 32-bit and 64-bit fields.
    """
    while pos < end:
        at = pos
        key, pos = _pb_varint(buf, pos, end)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise _PBError(f"field number 0 at byte {at}")
        if wt == 0:
            val, pos = _pb_varint(buf, pos, end)
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
            if pos + n > end:
                raise _PBError(f"field {num} runs past the end at byte {at}", truncated=True)
            val = (pos, pos + n)
            pos += n
        elif wt == 2:
            n, pos = _pb_varint(buf, pos, end)
            if pos + n > end:
                raise _PBError(f"field {num} at byte {at} needs {n} bytes, only {end - pos} left",
                               truncated=True)
            val = (pos, pos + n)
            pos += n
        else:
            raise _PBError(f"invalid wire type {wt} at byte {at}")
        yield num, wt, val


def _pb_packed_varints(buf, start, stop):
    """Decode packed varints ``buf[start:stop]`` -> int64 array (two's complement)."""
    a = np.frombuffer(buf, np.uint8, count=stop - start, offset=start)
    if a.size == 0:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero(a < 0x80)
    if ends.size == 0 or ends[-1] != a.size - 1:
        raise _PBError("packed varints run past their field", truncated=True)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise _PBError("varint longer than 10 bytes in a packed field")
    vals = np.zeros(ends.size, np.uint64)
    for k in range(int(lengths.max())):
        m = lengths > k
        vals[m] |= (a[starts[m] + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return vals.view(np.int64)


def _pb_repeated_ints(buf, wt, val):
    if wt == 0:
        v = val - (1 << 64) if val >= (1 << 63) else val
        return np.array([v], np.int64)
    if wt == 2:
        return _pb_packed_varints(buf, *val)
    raise _PBError(f"unexpected wire type {wt} for an integer field")


def _pb_repeated_fixed(buf, wt, val, dtype):
    dtype = np.dtype(dtype)
    if wt not in (1, 2, 5) or (wt != 2 and (val[1] - val[0]) != dtype.itemsize):
        raise _PBError(f"unexpected wire type {wt} for a {dtype} field")
    start, stop = val
    if (stop - start) % dtype.itemsize:
        raise _PBError(f"packed {dtype} field has {stop - start} bytes")
    return np.frombuffer(buf, dtype, count=(stop - start) // dtype.itemsize, offset=start)


# ONNX TensorProto.DataType -> (numpy dtype of the stored values, name)
_ONNX_DTYPES = {
    1: ("<f4", "float32"), 2: ("u1", "uint8"), 3: ("i1", "int8"), 4: ("<u2", "uint16"),
    5: ("<i2", "int16"), 6: ("<i4", "int32"), 7: ("<i8", "int64"), 9: ("?", "bool"),
    10: ("<f2", "float16"), 11: ("<f8", "float64"), 12: ("<u4", "uint32"),
    13: ("<u8", "uint64"), 16: ("<u2", "bfloat16"),
}
_ONNX_UNSUPPORTED = {8: "string", 14: "complex64", 15: "complex128"}


def _bf16_to_f32(a):
    return (np.asarray(a, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _finish_array(a, shape, bf16=False):
    """Copy into a native, writeable array of ``shape``; floats become float32."""
    if bf16:
        a = _bf16_to_f32(a)
    a = np.asarray(a).reshape(shape)
    dtype = np.float32 if a.dtype.kind == "f" else a.dtype.newbyteorder("=")
    return a.astype(dtype, order="C")  # always a fresh array that owns its data


def _onnx_tensor(buf, start, stop, path):
    dims, dtype_code, name = [], 0, ""
    raw = None
    typed = {}  # field number -> list of arrays
    external = False
    for num, wt, val in _pb_fields(buf, start, stop):
        if num == 1:
            dims.extend(int(d) for d in _pb_repeated_ints(buf, wt, val))
        elif num == 2 and wt == 0:
            dtype_code = val
        elif num == 8 and wt == 2:
            name = bytes(buf[val[0]:val[1]]).decode("utf-8", "replace")
        elif num == 9 and wt == 2:
            raw = val
        elif num == 4:
            typed.setdefault(4, []).append(_pb_repeated_fixed(buf, wt, val, "<f4"))
        elif num == 10:
            typed.setdefault(10, []).append(_pb_repeated_fixed(buf, wt, val, "<f8"))
        elif num in (5, 7, 11):
            typed.setdefault(num, []).append(_pb_repeated_ints(buf, wt, val))
        elif num == 13:
            external = True
        elif num == 14 and wt == 0 and val == 1:
            external = True
    label = name or "<unnamed>"
    if external:
        raise ConvertError(
            f"{path}: initializer {label!r} keeps its data in an external file (ONNX external "
            "data), which minifer does not read; re-save the model with all tensors inside "
            "the .onnx file (onnx.save(model, path, save_as_external_data=False))")
    if dtype_code in _ONNX_UNSUPPORTED:
        return name, None  # not a weight (e.g. string constants): skipped
    if dtype_code not in _ONNX_DTYPES:
        raise ConvertError(f"{path}: initializer {label!r} has unsupported ONNX data_type {dtype_code}")
    if any(d < 0 for d in dims):
        raise ConvertError(f"{path}: initializer {label!r} has negative dims {dims}")
    npdt, tname = _ONNX_DTYPES[dtype_code]
    npdt = np.dtype(npdt)
    shape = tuple(dims)
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    bf16 = dtype_code == 16
    if raw is not None:
        nbytes = raw[1] - raw[0]
        if nbytes != numel * npdt.itemsize:
            raise ConvertError(f"{path}: initializer {label!r} ({tname}, shape {shape}) has "
                               f"{nbytes} bytes of raw_data, expected {numel * npdt.itemsize}")
        a = np.frombuffer(buf, npdt, count=numel, offset=raw[0])
    else:
        field = {1: 4, 11: 10, 7: 7, 12: 11, 13: 11}.get(dtype_code, 5)
        parts = typed.get(field, [])
        a = np.concatenate(parts) if parts else np.zeros(0, npdt)
        if a.size != numel:
            raise ConvertError(f"{path}: initializer {label!r} ({tname}, shape {shape}) has "
                               f"{a.size} values, expected {numel}")
        if bf16 or dtype_code == 10:  # 16-bit floats are stored as their bit patterns
            a = a.astype(np.uint16)
            if dtype_code == 10:
                a = a.view(np.float16)
        elif dtype_code == 13:
            a = a.view(np.uint64)
        else:
            a = a.astype(npdt)
    return name, _finish_array(a, shape, bf16=bf16)


_MODEL_WIRE_TYPES = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def read_onnx(path):
    """Read the initializers of an ONNX model -> ``{name: array}``.

    Parses the protobuf directly (ModelProto.graph = field 7,
    GraphProto.initializer = field 5, TensorProto fields dims 1, data_type 2,
    float_data 4, int32_data 5, int64_data 7, name 8, raw_data 9,
    double_data 10, uint64_data 11). Supports float32/16/64, bfloat16 and the
    integer and bool types; floats come back as float32, arrays keep the
    stored layout (ONNX conv kernels are OIHW). String tensors are skipped.
    Raises :class:`ConvertError` for a truncated/corrupt file, a file that is
    not ONNX, or external data.
    """
    path = os.fspath(path)
    buf = _read_bytes(path)
    out = OrderedDict()
    graphs = 0
    try:
        for num, wt, val in _pb_fields(buf, 0, len(buf)):
            want = _MODEL_WIRE_TYPES.get(num)
            if want is not None and wt != want:
                raise _PBError(f"ModelProto field {num} has wire type {wt}, expected {want}")
            if num != 7:
                continue
            graphs += 1
            for gnum, gwt, gval in _pb_fields(buf, *val):
                if gnum == 5:
                    if gwt != 2:
                        raise _PBError(f"GraphProto.initializer has wire type {gwt}")
                    name, arr = _onnx_tensor(buf, gval[0], gval[1], path)
                    if arr is not None:
                        out[name] = arr
    except _PBError as e:
        what = "truncated or corrupt ONNX file" if e.truncated else "not a valid ONNX file"
        raise ConvertError(f"{path}: {what} (protobuf: {e})") from None
    if not graphs:
        raise ConvertError(f"{path}: not an ONNX model (no graph found)")
    if not out:
        raise ConvertError(f"{path}: ONNX model has no weight initializers")
    return dict(out)


# --------------------------------------------------------------------------- #
# Keras HDF5
# --------------------------------------------------------------------------- #

def _require_h5py():
    try:
        import h5py
    except ImportError:
        raise ConvertError("reading Keras .h5 weights needs h5py: pip install h5py "
                           "(or pip install 'minifer[h5]')") from None
    return h5py


def _decode_names(v):
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in np.asarray(v).ravel()]


def _h5_array(ds):
    a = np.asarray(ds[()])
    return a.astype(np.float32) if a.dtype.kind == "f" else a


def _read_h5_file(f, path, h5py):
    root = f["model_weights"] if "model_weights" in f else f
    out = OrderedDict()
    if "layer_names" in root.attrs:  # Keras 2 save_weights / full-model layout
        for lname in _decode_names(root.attrs["layer_names"]):
            if lname not in root:
                raise ConvertError(f"{path}: layer {lname!r} is listed but missing")
            g = root[lname]
            for w in _decode_names(g.attrs.get("weight_names", [])):
                if w not in g:
                    raise ConvertError(f"{path}: weight {lname}/{w} is listed but missing")
                out[f"{lname}/{w}"] = _h5_array(g[w])
    else:  # Keras 3 .weights.h5 (layers/<name>/vars/<i>) or any plain tree
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.split("/")[0].startswith("optimizer"):
                out[name] = _h5_array(obj)
        root.visititems(visit)
    return out


def read_keras_h5(path):
    """Read a Keras HDF5 weights file -> ``{"<layer>/<weight path>": array}``.

    Handles ``save_weights`` files (root attrs ``layer_names`` / per-layer
    ``weight_names``: ``block1_conv1/block1_conv1_W_1:0`` or
    ``block1_conv1/block1_conv1/kernel:0``), full-model files (the same under
    ``model_weights/``), Keras 3 ``.weights.h5`` (``layers/<name>/vars/0``)
    and ``.keras`` archives. Kernels stay HWIO. Needs ``h5py``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConvertError(f"file not found: {path}")
    h5py = _require_h5py()
    try:
        if zipfile.is_zipfile(path):  # Keras 3 .keras archive
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(".weights.h5")]
                if not names:
                    raise ConvertError(f"{path}: zip archive without a Keras *.weights.h5 inside")
                data = io.BytesIO(z.read(names[0]))
            with h5py.File(data, "r") as f:
                out = _read_h5_file(f, path, h5py)
        else:
            with h5py.File(path, "r") as f:
                out = _read_h5_file(f, path, h5py)
    except ConvertError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ConvertError(f"{path}: cannot read HDF5 weights ({type(e).__name__}: {_one_line(e)})") from None
    if not out:
        raise ConvertError(f"{path}: HDF5 file holds no weights")
    return dict(out)


# --------------------------------------------------------------------------- #
# PyTorch checkpoints (restricted unpickling, no torch)
# --------------------------------------------------------------------------- #

_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001
# b"\x80\x02" (PROTO 2) + LONG1 of 10 bytes = the magic number (first pickle of a legacy file)
_TORCH_LEGACY_HEAD = b"\x80\x02\x8a\x0a" + _TORCH_MAGIC.to_bytes(10, "little")

_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "BFloat16Storage": "bf16", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "UntypedStorage": "u1",
}


class _Sealed:
    """Objects the pickle may reference but never modify (BUILD is refused)."""
    __slots__ = ()

    def __setstate__(self, state):
        raise ConvertError("pickle tries to modify a tensor or storage object")


class _StorageType(_Sealed):
    __slots__ = ("name", "dtype", "bf16")

    def __init__(self, name):
        code = _STORAGE_DTYPES[name]
        self.name = name
        self.bf16 = code == "bf16"
        self.dtype = np.dtype("<u2" if self.bf16 else code)


class _Storage(_Sealed):
    """A flat storage; ``array`` is filled from the file (maybe later)."""
    __slots__ = ("stype", "numel", "array", "root", "offset")

    def __init__(self, stype, numel, root=None, offset=0):
        self.stype, self.numel, self.array = stype, numel, None
        self.root, self.offset = root, offset

    def data(self, where):
        if self.root is not None:
            base = self.root.data(where)
            return base[self.offset:self.offset + self.numel]
        if self.array is None:
            raise ConvertError(f"{where}: storage data missing from the file")
        return self.array


class _TensorRef(_Sealed):
    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_geometry(storage, offset, size, stride):
    if not isinstance(storage, _Storage):
        raise ConvertError("tensor without a storage in the pickle")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and _is_int(offset) and offset >= 0
            and len(size) == len(stride) and all(_is_int(n) and n >= 0 for n in size)
            and all(_is_int(s) and s >= 0 for s in stride)):
        raise ConvertError(f"bad tensor geometry (offset {offset!r}, size {size!r}, stride {stride!r})")


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    size = tuple(size) if isinstance(size, (tuple, list)) else size
    stride = tuple(stride) if isinstance(stride, (tuple, list)) else stride
    _check_geometry(storage, storage_offset, size, stride)
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


_TORCH_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensor-rebuilding globals; never imports."""

    def __init__(self, file, path, persistent=None):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self._persistent = persistent

    def find_class(self, module, name):
        fn = _TORCH_GLOBALS.get((module, name))
        if fn is not None:
            return fn
        if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
            return _StorageType(name)
        hint = ""
        if not module.startswith(("torch", "collections")):
            hint = " (a whole pickled model or object; save model.state_dict() instead)"
        raise ConvertError(f"{self._path}: minifer refuses to load {module}.{name} from a pickle: "
                           f"only tensors, storages and OrderedDict are allowed{hint}")

    def persistent_load(self, pid):
        if self._persistent is None:
            raise ConvertError(f"{self._path}: unexpected persistent id in pickle")
        return self._persistent(pid)


class _BufReader:
    """Read-only file object over a bytes-like buffer (bytes or an mmap).

    Enough for ``pickle`` and ``pickletools.genops`` (``read``, ``readline``,
    ``tell``); ``pos`` ends exactly after each pickle's STOP, where a legacy
    torch file's next pickle or its raw storages start.
    """
    __slots__ = ("buf", "pos")

    def __init__(self, buf, pos=0):
        self.buf, self.pos = buf, pos

    def read(self, n=-1):
        end = len(self.buf) if n is None or n < 0 else min(len(self.buf), self.pos + n)
        b = bytes(self.buf[self.pos:end])
        self.pos = max(self.pos, end)
        return b

    def readline(self):
        i = self.buf.find(b"\n", self.pos)
        return self.read(-1 if i < 0 else i + 1 - self.pos)

    def tell(self):
        return self.pos


def _load_pickle(reader, path, persistent=None):
    """Check one pickle's opcodes without running it, then unpickle it restricted.

    The scan (``pickletools.genops``) catches truncated data and corrupt
    length fields before the C unpickler would allocate for them (a corrupt
    BYTEARRAY8 length otherwise ends in a MemoryError plus a stray CPython
    ``SystemError`` line on stderr), and refuses protocol-5 buffer opcodes,
    which torch checkpoints never use.
    """
    start = reader.pos
    try:
        for op, _arg, _pos in pickletools.genops(reader):
            if op.proto > 4:
                raise ConvertError(f"{path}: pickle opcode {op.name} is not used by PyTorch checkpoints")
    except (ValueError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path}: corrupt or truncated pickle ({_one_line(e)[:200]})") from None
    reader.pos = start
    return _RestrictedUnpickler(reader, path, persistent).load()


def _decode_ascii(x):
    return x.decode("ascii", "replace") if isinstance(x, bytes) else x


def _check_pid(pid, path, n):
    if not isinstance(pid, tuple) or not pid:
        raise ConvertError(f"{path}: bad persistent id in pickle")
    kind = _decode_ascii(pid[0])
    if kind == "module":
        raise ConvertError(f"{path}: file holds a whole pickled nn.Module; "
                           "save and convert model.state_dict() instead")
    if kind != "storage" or len(pid) != n or not isinstance(pid[1], _StorageType) \
            or not _is_int(pid[4]) or pid[4] < 0:
        raise ConvertError(f"{path}: bad storage reference {pid[:1]!r} in pickle")
    return pid


def _materialize(obj, where):
    if isinstance(obj, _TensorRef):
        st = obj.storage
        _check_geometry(st, obj.offset, obj.size, obj.stride)  # defence in depth
        base = st.data(where)
        if not (isinstance(base, np.ndarray) and base.ndim == 1):
            raise ConvertError(f"{where}: bad storage object in pickle")
        if any(n == 0 for n in obj.size):
            a = np.zeros(obj.size, base.dtype)
        else:
            last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
            numel = int(np.prod(obj.size, dtype=object))
            if numel > max(16 * base.size, 1 << 26):  # stride-0 expansion bomb
                raise ConvertError(f"{where}: tensor of size {obj.size} expands a storage of "
                                   f"{base.size} elements; refusing")
            if last >= base.size:
                raise ConvertError(f"{where}: tensor (offset {obj.offset}, size {obj.size}, stride "
                                   f"{obj.stride}) reaches past its storage of {base.size} elements")
            view = np.lib.stride_tricks.as_strided(
                base[obj.offset:], shape=obj.size,
                strides=tuple(s * base.itemsize for s in obj.stride), writeable=False)
            a = np.array(view)  # copy -> C-contiguous, owns its data
        return _finish_array(a, obj.size, bf16=st.stype.bf16)
    if isinstance(obj, dict):
        return OrderedDict((k, _materialize(v, where)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return [_materialize(v, where) for v in obj]
    return obj


def _flatten(obj, prefix, out):
    if isinstance(obj, np.ndarray):
        out[prefix or "tensor"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def _safe_key(key, path):
    key = _decode_ascii(key)
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key) or ".." in key:
        raise ConvertError(f"{path}: bad storage key {key!r} in pickle")
    return key


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkls:
            if any(n.endswith("constants.pkl") for n in names):
                raise ConvertError(f"{path}: TorchScript archive (torch.jit.save); "
                                   "save model.state_dict() with torch.save instead")
            raise ConvertError(f"{path}: zip archive but not a PyTorch checkpoint (no data.pkl)")
        prefix = pkls[0][:-len("data.pkl")]
        if prefix + "constants.pkl" in names:
            raise ConvertError(f"{path}: TorchScript archive (torch.jit.save); "
                               "save model.state_dict() with torch.save instead")
        order = "<"
        if prefix + "byteorder" in names:
            bo = zf.read(prefix + "byteorder").strip()
            if bo not in (b"little", b"big"):
                raise ConvertError(f"{path}: unknown byteorder record {bo[:20]!r}")
            order = "<" if bo == b"little" else ">"
        storages = {}

        def persistent(pid):
            _, stype, key, _location, numel = _check_pid(pid, path, 5)
            key = _safe_key(key, path)
            if key in storages:
                return storages[key]
            rec = f"{prefix}data/{key}"
            try:
                info = zf.getinfo(rec)
            except KeyError:
                raise ConvertError(f"{path}: storage record {rec} is missing") from None
            dtype = stype.dtype.newbyteorder(order)
            nbytes = numel * dtype.itemsize
            if info.file_size < nbytes:
                raise ConvertError(f"{path}: storage {rec} has {info.file_size} bytes, "
                                   f"needs {nbytes}")
            st = _Storage(stype, numel)
            st.array = np.frombuffer(zf.read(rec), dtype, count=numel)
            storages[key] = st
            return st

        obj = _load_pickle(_BufReader(zf.read(pkls[0])), path, persistent)
    return _materialize(obj, path)


def _read_torch_legacy(path):
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _read_torch_legacy_buf(mm, path)
    finally:
        try:
            mm.close()
        except BufferError:  # an array still views it; freed with the last reference
            pass


def _read_torch_legacy_buf(buf, path):
    f = _BufReader(buf)
    magic = _load_pickle(f, path)
    if magic != _TORCH_MAGIC:
        raise ConvertError(f"{path}: pickle file but not a PyTorch checkpoint (bad magic number)")
    proto = _load_pickle(f, path)
    if proto != _TORCH_LEGACY_PROTOCOL:
        raise ConvertError(f"{path}: unsupported legacy PyTorch protocol {proto!r}")
    _load_pickle(f, path)  # sys info; torch writes storages little-endian
    roots, views = {}, {}

    def persistent(pid):
        _, stype, root_key, _location, numel, view = _check_pid(pid, path, 6)
        root_key = _safe_key(root_key, path)
        root = roots.get(root_key)
        if root is None:
            root = roots[root_key] = _Storage(stype, numel)
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1])
                and _is_int(view[2]) and view[1] >= 0 and view[2] >= 0):
            raise ConvertError(f"{path}: bad storage view in pickle")
        vkey = _safe_key(view[0], path)
        if vkey not in views:
            if view[1] + view[2] > root.numel:
                raise ConvertError(f"{path}: storage view reaches past its storage")
            views[vkey] = _Storage(stype, view[2], root=root, offset=view[1])
        return views[vkey]

    obj = _load_pickle(f, path, persistent)
    keys = _load_pickle(f, path)
    if not isinstance(keys, list):
        raise ConvertError(f"{path}: bad storage key list")
    pos, size = f.pos, len(buf)
    for key in keys:
        key = _safe_key(key, path)
        st = roots.get(key)
        if st is None:
            raise ConvertError(f"{path}: storage {key} is not referenced by the pickle")
        if pos + 8 > size:
            raise ConvertError(f"{path}: truncated file (storage {key} missing)")
        n = int.from_bytes(buf[pos:pos + 8], "little", signed=True)
        pos += 8
        if n != st.numel:
            raise ConvertError(f"{path}: storage {key} has {n} elements, pickle says {st.numel}")
        dtype = st.stype.dtype.newbyteorder("<")
        nbytes = n * dtype.itemsize
        if pos + nbytes > size:
            raise ConvertError(f"{path}: truncated file (storage {key} needs {nbytes} bytes, "
                               f"{size - pos} left)")
        st.array = np.frombuffer(buf, dtype, count=n, offset=pos)
        pos += nbytes
    return _materialize(obj, path)


def read_torch(path):
    """Read a PyTorch checkpoint -> flat ``{name: array}`` without torch.

    Zip format (torch >= 1.6: ``<prefix>/data.pkl`` + ``<prefix>/data/<key>``)
    and the legacy pickle stream (magic number, protocol 1001, sys info, the
    object pickle, storage keys, then raw storages) are supported. Unpickling
    is restricted: only ``collections.OrderedDict``,
    ``torch._utils._rebuild_tensor[_v2]``, ``_rebuild_parameter`` and the
    ``torch.*Storage`` types resolve; any other global raises
    :class:`ConvertError` without being imported or called. Tensors honour
    storage offset, size and strides (shared and non-contiguous storages).
    Nested dicts are flattened with ``.``; floats come back as float32.
    """
    path = os.fspath(path)
    head = _read_head(path, 512)
    try:
        if head.startswith(b"PK\x03\x04") or zipfile.is_zipfile(path):
            obj = _read_torch_zip(path)
        elif head.startswith(b"\x80"):
            obj = _read_torch_legacy(path)
        elif _is_tar(head):
            raise ConvertError(f"{path}: old tar-based PyTorch format (torch < 0.4) is not "
                               "supported; re-save it with a current torch.save")
        else:
            raise ConvertError(f"{path}: not a PyTorch checkpoint (neither zip nor pickle)")
    except ConvertError as e:
        if str(e).startswith(path):
            raise
        raise ConvertError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError,
            IndexError, KeyError, AttributeError, OverflowError, MemoryError, OSError,
            NotImplementedError, RuntimeError, zlib.error) as e:
        raise ConvertError(f"{path}: corrupt or truncated PyTorch file "
                           f"({type(e).__name__}: {_one_line(e)[:200]})") from None
    out = OrderedDict()
    _flatten(obj, "", out)
    if not out:
        raise ConvertError(f"{path}: PyTorch file holds no tensors")
    return dict(out)


# --------------------------------------------------------------------------- #
# Format detection
# --------------------------------------------------------------------------- #

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXT_FORMAT = {".onnx": "onnx", ".h5": "h5", ".hdf5": "h5", ".keras": "h5",
               ".pth": "torch", ".pt": "torch", ".bin": "torch", ".ckpt": "torch", ".tar": "torch"}
_READERS = {"onnx": read_onnx, "h5": read_keras_h5, "torch": read_torch}


def _read_head(path, n):
    if not os.path.exists(path):
        raise ConvertError(f"file not found: {path}")
    if not os.path.isfile(path):
        raise ConvertError(f"not a regular file: {path}")
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise ConvertError(f"cannot read {path}: {e.strerror or e}") from None


def _read_bytes(path):
    _read_head(path, 0)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConvertError(f"cannot read {path}: {e.strerror or e}") from None


def _is_tar(head):
    return len(head) >= 262 and head[257:262] == b"ustar"


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
