"""Weights files: ``.npz`` with flat ``layer/param`` keys and JSON metadata.

A weights file is a plain NumPy ``.npz`` archive. Every array is stored under a
flat key such as ``conv1/W``; one extra entry, ``__meta__``, holds UTF-8 JSON
bytes (a uint8 array) describing the architecture, class names, input shape,
preprocessing and the minifer version, so a file is self-describing.

Loading never unpickles (``allow_pickle=False``), and writes are atomic: the
archive goes to a temporary file in the same folder, then ``os.replace``
renames it over the target, so a crash never leaves half a file behind.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

META_KEY = "__meta__"
FORMAT = "minifer-weights"


class WeightsError(ValueError):
    """A weights file is missing, corrupt, truncated or does not fit."""


def temp_file_for(path, suffix=""):
    """A new, empty temporary file next to ``path`` -> its name.

    It has the mode ``path`` will keep: the replaced file's, else the usual
    ``0666 & ~umask`` (``mkstemp`` alone would make it 0600). Put it in place
    with :func:`commit`, or delete it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o666 & ~umask)
    return tmp


def commit(tmp, path):
    """Flush ``tmp`` to disk and rename it over ``path`` (atomic on one file system)."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.fspath(path))


def atomic_write(path, write_fn, suffix=""):
    """Call ``write_fn(file_object)`` on a temp file, then rename it to ``path``.

    ``path`` is either left as it was or replaced whole, never half written.
    """
    tmp = temp_file_for(path, suffix)
    try:
        with open(tmp, "wb") as f:
            write_fn(f)
        commit(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npz(path, arrays, meta, dtype=None, compress=False):
    """Write ``arrays`` (name -> array) and ``meta`` (JSON-able dict) atomically.

    ``dtype`` (e.g. ``np.float16``) casts floating arrays for a smaller file;
    :func:`load_npz` always returns float32. ``compress`` deflates the arrays: trained
    float weights shrink by only about 7% for 20-40x the write time (chapter 9 has the
    figures), so only the files that ship use it.
    """
    out = {}
    for k, v in arrays.items():
        if k == META_KEY:
            raise ValueError(f"{META_KEY!r} is reserved")
        v = np.asarray(v)
        if dtype is not None and np.issubdtype(v.dtype, np.floating):
            v = v.astype(dtype)
        out[k] = v
    meta = dict(meta, format=FORMAT)
    out[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    write = np.savez_compressed if compress else np.savez
    atomic_write(path, lambda f: write(f, **out), suffix=".npz")


def load_npz(path):
    """Read a weights file -> ``(arrays, meta)``; floats come back as float32.

    Raises :class:`WeightsError` with a one-line reason for a missing, corrupt,
    truncated or foreign file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if META_KEY not in z.files:
                raise WeightsError(f"{path}: not a minifer weights file (no {META_KEY} entry)")
            meta = json.loads(z[META_KEY].tobytes().decode("utf-8"))
            arrays = {}
            for k in z.files:
                if k == META_KEY:
                    continue
                a = z[k]
                arrays[k] = a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a
    except WeightsError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: corrupt or truncated weights file ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a minifer weights file (bad metadata)")
    return arrays, meta
