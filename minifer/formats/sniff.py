"""Which weights format is a file, and reading it by format.

* :func:`detect_format`: ``"onnx"``, ``"h5"`` or ``"torch"`` from the magic bytes,
  the extension when the content says nothing; a contradiction is an error;
* :func:`read_weights`: any supported file -> ``{name: array}`` (raw names as stored),
  through the reader of its format (:mod:`minifer.formats.onnx`,
  :mod:`~minifer.formats.keras_h5`, :mod:`~minifer.formats.torch_pickle`).

Every failure on untrusted bytes is a :class:`~minifer.formats.errors.ConvertError`
with one line of explanation.
"""
import os
import zipfile
from pathlib import Path

from .common import _is_tar, _read_head
from .errors import ConvertError, _one_line
from .keras_h5 import read_keras_h5
from .onnx import read_onnx
from .torch_pickle import _TORCH_LEGACY_HEAD, read_torch

#: The formats, by their short names.
FORMATS = ("onnx", "h5", "torch")
FORMAT_NAMES = {"onnx": "ONNX", "h5": "HDF5", "torch": "PyTorch"}

_ALIASES = {"onnx": "onnx", "h5": "h5", "hdf5": "h5", "keras": "h5",
            "torch": "torch", "pytorch": "torch", "pth": "torch", "pt": "torch"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXT_FORMAT = {".onnx": "onnx", ".h5": "h5", ".hdf5": "h5", ".keras": "h5",
               ".pth": "torch", ".pt": "torch", ".bin": "torch", ".ckpt": "torch", ".tar": "torch"}
_READERS = {"onnx": read_onnx, "h5": read_keras_h5, "torch": read_torch}


def format_name(name):
    """A format name or alias (``"keras"``, ``"pytorch"``, ``"pth"``...) -> one of :data:`FORMATS`."""
    s = _ALIASES.get(str(name).lower())
    if s is None:
        raise ValueError(f"unknown source format {name!r}; use one of {', '.join(FORMATS)}")
    return s


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
        raise ConvertError(f"{path}: the extension says {FORMAT_NAMES[by_ext]} but the content "
                           f"is {FORMAT_NAMES[by_magic]}")
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
    return read_weights_and_format(path, format)[0]


def read_weights_and_format(path, format="auto"):
    """:func:`read_weights` -> ``(arrays, format)``, the format as detected or given."""
    path = os.fspath(path)
    if format in (None, "auto"):
        fmt = detect_format(path)
    else:
        fmt = format_name(format)
        head = _read_head(path, 512)
        if not head:
            raise ConvertError(f"{path}: empty file")
        magic = _sniff(path, head)
        if magic is not None and magic != fmt:
            raise ConvertError(f"{path}: asked to read {FORMAT_NAMES[fmt]} but the content "
                               f"is {FORMAT_NAMES[magic]}")
    try:
        return _READERS[fmt](path), fmt
    except ConvertError:
        raise
    except Exception as e:  # any other failure on untrusted bytes: one clear line
        raise ConvertError(f"{path}: corrupt {FORMAT_NAMES[fmt]} file "
                           f"({type(e).__name__}: {_one_line(e)[:200]})") from None
