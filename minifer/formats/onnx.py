"""Read the weights of an ONNX model (``.onnx``) -- built in.

The protobuf is parsed by the small wire-format reader in
:mod:`minifer.formats.protobuf` (no ``onnx`` package). Weights are the
``graph.initializer`` tensors (``raw_data`` or the typed ``*_data`` fields).
Models that keep tensors in external files are refused with a clear message.
"""
import os
from collections import OrderedDict

import numpy as np

from .common import _finish_array, _read_bytes
from .errors import ConvertError
from .protobuf import _PBError, _pb_fields, _pb_repeated_fixed, _pb_repeated_ints


# ONNX TensorProto.DataType -> (numpy dtype of the stored values, name)
_ONNX_DTYPES = {
    1: ("<f4", "float32"), 2: ("u1", "uint8"), 3: ("i1", "int8"), 4: ("<u2", "uint16"),
    5: ("<i2", "int16"), 6: ("<i4", "int32"), 7: ("<i8", "int64"), 9: ("?", "bool"),
    10: ("<f2", "float16"), 11: ("<f8", "float64"), 12: ("<u4", "uint32"),
    13: ("<u8", "uint64"), 16: ("<u2", "bfloat16"),
}
_ONNX_UNSUPPORTED = {8: "string", 14: "complex64", 15: "complex128"}


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
