"""Minimal protobuf wire-format reader, enough to parse ONNX files without the
``onnx`` or ``protobuf`` packages.

Only decoding is supported: :func:`_pb_fields` walks one message and yields
``(field_number, wire_type, value)``; the other helpers decode packed and
repeated numeric fields into NumPy arrays. Malformed input raises
:class:`_PBError` (``truncated=True`` when the data simply ends too early).
"""
import numpy as np


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
