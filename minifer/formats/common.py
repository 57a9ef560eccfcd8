"""Helpers shared by the weights readers (and :mod:`minifer.formats.sniff`'s format
detection): reading a source file's head or bytes with clear errors, spotting a
tar header, and turning stored values into native float32 arrays."""
import os

import numpy as np

from .errors import ConvertError


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


def _bf16_to_f32(a):
    return (np.asarray(a, np.uint16).astype(np.uint32) << 16).view(np.float32)


def _finish_array(a, shape, bf16=False):
    """Copy into a native, writeable array of ``shape``; floats become float32."""
    if bf16:
        a = _bf16_to_f32(a)
    a = np.asarray(a).reshape(shape)
    dtype = np.float32 if a.dtype.kind == "f" else a.dtype.newbyteorder("=")
    return a.astype(dtype, order="C")  # always a fresh array that owns its data
