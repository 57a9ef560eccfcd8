"""Read PyTorch checkpoints (``.pth``/``.pt``/``.bin``) -- built in; never
imports torch and never runs code from the file.

Both the zip format (torch >= 1.6) and the legacy pickle-stream format (e.g.
``vgg16-397923af.pth``) are read with a restricted unpickler that only accepts
tensors, storages and ``OrderedDict``; anything else (``os.system``, a pickled
``nn.Module``...) raises :class:`~minifer.formats.errors.ConvertError` before it
could run. The pre-1.0 tar format is refused.
"""
import mmap
import os
import pickle
import pickletools
import re
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from .common import _finish_array, _is_tar, _read_head
from .errors import ConvertError, _one_line


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
