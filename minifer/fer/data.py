"""FER2013 loading: the Kaggle csv, an image-folder export, or an ``.npz``.

Every loader returns the same thing::

    x, y = load_fer(path, split="train")
    x.dtype, x.shape   # uint8, (N, 48, 48)   grey pixels 0..255
    y.dtype, y.shape   # uint8, (N,)          labels 0..6, index into CLASSES

and raises :class:`DataError` (a ``ValueError``) with a one-line message that
names the file and the row / image when the input is wrong.

Three sources are understood (chosen from ``path``):

* **csv** -- the original Kaggle ``fer2013.csv`` with header
  ``emotion,pixels,Usage``; ``pixels`` holds 2304 space separated ints.
  Parsing is vectorised (about 2 s for all 35,887 rows) and the decoded arrays
  are cached in :func:`minifer.formats.default_cache_dir` (``$MINIFER_CACHE``,
  default ``~/.cache/minifer``), so the next load is a plain ``np.load``.
* **image folders** -- ``ROOT/train/<emotion>/*.png|jpg``, ``ROOT/test/...``
  (or ``ROOT/<emotion>/...`` for a single split). Images are decoded by
  :func:`minifer.fer.images.load_image`, converted to grey and resized to
  48x48 if needed. Also cached.
* **npz** -- keys ``x_<split>``, ``y_<split>`` (e.g. ``x_train``, ``x_val``)
  and optionally ``classes``, as in ``shared/data/fer2013/fer2013_train_val.npz``.

Split names are case-insensitive and the csv ``Usage`` names and the short
names are interchangeable: ``train`` = ``Training``, ``val`` / ``valid`` /
``validation`` = ``PublicTest``, ``test`` = ``PrivateTest`` (for a folder export
with only ``train/`` and ``test/``, ``PublicTest`` also falls back to ``test/``).
``split=None`` returns every split concatenated.

Class imbalance helpers (FER2013 has 436 ``disgust`` vs 7215 ``happy`` train
faces): :func:`class_counts`, :func:`class_weights`,
:func:`balanced_sampler_indices`. The class names and the face size come from
:mod:`minifer.fer.classes`; so does the normalisation the model eats
(:func:`minifer.fer.classes.model_input`, which :func:`to_model_input` wraps).
"""
import hashlib
import os
import re
import zipfile

import numpy as np

from ..formats import default_cache_dir
from ..io import atomic_write
from .classes import CLASSES, FACE_SIZE, NUM_CLASSES, gray_preprocess, model_input
from .images import IMAGE_EXTENSIONS, ImageError, load_image, to_gray_array

SIZE = FACE_SIZE
NPIX = SIZE * SIZE  # 2304 pixels per face

_CACHE_VERSION = "1"
_CSV_CHUNK = 128  # rows parsed per vectorised step (keeps temporaries small)


class DataError(ValueError):
    """The data file / folder is missing, malformed or has an unknown split."""


# ----------------------------------------------------------------------------
# split names
# ----------------------------------------------------------------------------
# canonical short name -> every spelling accepted for it (all lower case)
_SPLIT_ALIASES = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "publictest"),
    "test": ("test", "privatetest"),
}
_CSV_USAGE = {"train": "training", "val": "publictest", "test": "privatetest"}


def canonical_split(split):
    """``"Training"`` -> ``"train"``, ``"PublicTest"``/``"valid"`` -> ``"val"``,
    ``"PrivateTest"`` -> ``"test"``; unknown names are returned lower-cased."""
    key = str(split).strip().lower()
    for name, spellings in _SPLIT_ALIASES.items():
        if key in spellings:
            return name
    return key


def _unknown_split(path, split, available):
    avail = ", ".join(available) if available else "(none)"
    return DataError(f"{path}: unknown split {split!r}; available: {avail}")


# ----------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------
def load_fer(path, split=None, cache=True):
    """Load FER faces from a csv, an image folder or an npz.

    Args:
        path: ``fer2013.csv``, an image-folder root, or an ``.npz`` file.
        split: ``None`` (all rows) or a split name such as ``"train"``,
            ``"Training"``, ``"val"``, ``"PublicTest"``, ``"test"`` (any case).
        cache: cache decoded csv / image-folder arrays in ``$MINIFER_CACHE``
            (default ``~/.cache/minifer``); the key is the path, size and mtime
            (every image file's for a folder) and the split.

    Returns:
        ``(x, y)``: ``x`` uint8 ``(N, 48, 48)``, ``y`` uint8 ``(N,)`` in 0..6.

    Raises:
        DataError: missing file, malformed row, wrong pixel count, unknown
            label or class folder, unreadable image, unknown split.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        return _load_folder(path, split, cache)
    low = path.lower()
    if low.endswith(".npz"):
        return _load_npz(path, split)
    if low.endswith(".csv"):
        return _load_csv(path, split, cache)
    raise DataError(f"{path}: unsupported data file (expected .csv, .npz or a folder)")


# ----------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------
def _cache_path(kind, path, fingerprint, split):
    """Cache file for ``path``; ``fingerprint`` changes when the source does."""
    ident = "|".join([_CACHE_VERSION, kind, os.path.abspath(path), fingerprint,
                      "all" if split is None else canonical_split(split)])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(os.path.normpath(path)))[:40]
    return os.path.join(default_cache_dir(), f"fer-{stem}-{digest}.npz")


def _cache_load(cpath):
    """``(x, y)`` from a cache file, or ``None`` if absent / unreadable."""
    try:
        with np.load(cpath, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    if x.dtype != np.uint8 or y.dtype != np.uint8 or x.shape[1:] != (SIZE, SIZE) \
            or x.shape[0] != y.shape[0]:
        return None
    return x, y


def _cache_save(cpath, x, y):
    """Write atomically (:func:`minifer.io.atomic_write`); failures only warn."""
    try:
        atomic_write(cpath, lambda f: np.savez(f, x=x, y=y), suffix=".npz")
    except OSError as e:  # read-only home, full disk: loading still works
        import warnings
        warnings.warn(f"minifer: could not write data cache {cpath}: {e}", stacklevel=3)


def _cached(kind, path, fingerprint, split, cache, build):
    """Return ``build()`` through the cache when ``cache`` is true."""
    if not cache:
        return build()
    cpath = _cache_path(kind, path, fingerprint, split)
    hit = _cache_load(cpath)
    if hit is not None:
        return hit
    x, y = build()
    _cache_save(cpath, x, y)
    return x, y


def _file_fingerprint(path):
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


# ----------------------------------------------------------------------------
# csv
# ----------------------------------------------------------------------------
def _load_csv(path, split, cache):
    return _cached("csv", path, _file_fingerprint(path), split, cache,
                   lambda: _parse_csv(path, split))


def _field(b):
    return b.strip().strip(b'"').strip()


def _parse_csv(path, split):
    """Decode a Kaggle-style csv. Rows are numbered from 1 (line = row + 1)."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not lines:
        raise DataError(f"{path}: empty csv file")
    header = [_field(h).decode("utf-8", "replace").lstrip("\ufeff").lower()
              for h in lines[0].split(b",")]
    if "emotion" not in header or "pixels" not in header:
        raise DataError(f"{path}: line 1: expected a header with 'emotion' and 'pixels' "
                        f"columns, got {','.join(header)!r}")
    i_lab, i_pix = header.index("emotion"), header.index("pixels")
    i_use = header.index("usage") if "usage" in header else None
    ncol = len(header)

    # pass 1: labels and usage for every row (cheap); remember pixel fields
    labels, usages, pixels, rownums = [], [], [], []
    for row, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        where = f"{path}: row {row} (line {row + 1})"
        fields = line.split(b",")
        if len(fields) != ncol:
            raise DataError(f"{where}: malformed row, expected {ncol} comma separated "
                            f"fields, got {len(fields)}")
        lab = _field(fields[i_lab])
        try:
            lab_i = int(lab)
        except ValueError:
            raise DataError(f"{where}: bad label {lab.decode('utf-8', 'replace')!r} "
                            f"(expected an integer 0..{NUM_CLASSES - 1})") from None
        if not 0 <= lab_i < NUM_CLASSES:
            raise DataError(f"{where}: unknown label {lab_i} (expected 0..{NUM_CLASSES - 1})")
        labels.append(lab_i)
        usages.append(_field(fields[i_use]).decode("utf-8", "replace") if i_use is not None else "")
        pixels.append(fields[i_pix])
        rownums.append(row)

    keep = _csv_select(path, split, usages, i_use is not None)
    if keep is not None:
        labels = [labels[i] for i in keep]
        pixels = [pixels[i] for i in keep]
        rownums = [rownums[i] for i in keep]
    y = np.asarray(labels, dtype=np.uint8)
    x = _decode_pixel_rows(path, pixels, rownums)
    return x, y


def _csv_select(path, split, usages, has_usage):
    """Row indices of ``split`` (``None`` = all rows)."""
    if split is None:
        return None
    present = list(dict.fromkeys(usages)) if has_usage else []
    key = str(split).strip().lower()
    lowered = {u.lower(): u for u in present}
    want = key if key in lowered else _CSV_USAGE.get(canonical_split(key), key)
    if want not in lowered:
        aliases = [f"{u} ({canonical_split(u)})" if canonical_split(u) != u.lower() else u
                   for u in present]
        raise _unknown_split(path, split, aliases)
    target = lowered[want]
    return [i for i, u in enumerate(usages) if u == target]


def _decode_pixel_rows(path, pixels, rownums):
    """Decode pixel strings (bytes, ``"70 80 82 ..."``) to uint8 ``(N, 48, 48)``.

    Each row is first checked to hold exactly 2304 tokens (``bytes.count`` is C
    speed; rows with odd whitespace are re-joined). Rows are then parsed in
    chunks with a vectorised digit scan (:func:`_parse_tokens`).
    """
    n = len(pixels)
    clean = []
    for k, p in enumerate(pixels):
        p = _field(p)
        if p.count(b" ") != NPIX - 1 or b"  " in p:
            toks = p.split()
            if len(toks) != NPIX:
                r = rownums[k]
                raise DataError(f"{path}: row {r} (line {r + 1}): expected {NPIX} pixel "
                                f"values, got {len(toks)}")
            p = b" ".join(toks)
        clean.append(p)

    out = np.empty((n, NPIX), dtype=np.uint8)
    for s in range(0, n, _CSV_CHUNK):
        chunk = clean[s:s + _CSV_CHUNK]
        vals = _parse_tokens(b" ".join(chunk))
        bad = None
        if vals is None or vals.size != len(chunk) * NPIX:
            bad = _first_bad_row(chunk)
        elif vals.max(initial=0) > 255:
            bad = int(np.argmax((vals > 255).reshape(len(chunk), NPIX).any(axis=1)))
        if bad is not None:
            r = rownums[s + bad]
            raise DataError(f"{path}: row {r} (line {r + 1}): pixel values must be "
                            f"integers 0..255")
        out[s:s + len(chunk)] = vals.reshape(len(chunk), NPIX)
    return out.reshape(n, SIZE, SIZE)


def _parse_tokens(buf):
    """Space separated decimal ints (1-3 digits) in ``buf`` -> uint16 array.

    With ``d = byte - ord("0")`` (so a space becomes 240), a token ends at each
    digit followed by a non-digit, and its value is ``d[i] + 10 d[i-1] +
    100 d[i-2]``, the earlier terms counting only while they are digits.
    Returns ``None`` if ``buf`` holds anything but digits and spaces, or a
    token of 4+ digits.
    """
    a = np.frombuffer(buf, dtype=np.uint8)
    p = np.full(a.size + 3, 240, dtype=np.uint8)  # 2 "spaces" before, 1 after
    np.subtract(a, np.uint8(48), out=p[2:-1])
    dig = p < 10
    if np.count_nonzero(dig) + np.count_nonzero(p == 240) != p.size:
        return None                                  # a byte that is neither
    pair = dig[1:] & dig[:-1]                        # digit followed by digit
    if np.any(pair[:-2] & pair[2:]):
        return None                                  # 4 digits in a row
    q = np.flatnonzero(dig[2:-1] & ~dig[3:]) + 2     # last digit of each token
    val = p[q].astype(np.uint16)
    d1 = p[q - 1].astype(np.uint16)
    d1[d1 == 240] = 0
    d1 *= 10
    val += d1
    d2 = p[q - 2].astype(np.uint16)
    d2[~pair[q - 2]] = 0
    d2 *= 100
    val += d2
    return val


def _first_bad_row(chunk):
    for k, p in enumerate(chunk):
        v = _parse_tokens(p)
        if v is None or v.size != NPIX or v.max(initial=0) > 255:
            return k
    return 0


# ----------------------------------------------------------------------------
# image folders
# ----------------------------------------------------------------------------
def _class_index(name):
    """Class folder name -> label, or ``None`` (accepts ``Happy``, ``3``)."""
    key = name.strip().lower()
    if key in CLASSES:
        return CLASSES.index(key)
    if key.isdigit() and int(key) < NUM_CLASSES:
        return int(key)
    return None


def _subdirs(path):
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _natural_key(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _folder_splits(root):
    """``{canonical split: folder name}`` of a ``ROOT/<split>/<class>/`` tree."""
    out = {}
    for name in _subdirs(root):
        out.setdefault(canonical_split(name), name)
    return out


def _resolve_folder(root, split):
    """List of ``(folder, filename prefix or None)`` to read for ``split``."""
    subs = _subdirs(root)
    if subs and any(_class_index(s) is not None for s in subs):  # ROOT/<class>/
        own = canonical_split(os.path.basename(os.path.normpath(root)))
        if split is not None and canonical_split(split) != own:
            raise DataError(f"{root}: is a single split (class folders directly inside); "
                            f"use split=None, got split={split!r}")
        return [(root, None)]
    splits = _folder_splits(root)
    if not splits:
        raise DataError(f"{root}: no split or class folders found")
    order = sorted(splits, key=lambda s: (["train", "val", "test"] + [s]).index(s))
    if split is None:
        return [(os.path.join(root, splits[s]), None) for s in order]
    key = str(split).strip().lower()
    canon = canonical_split(key)
    if canon in splits:
        folder = splits[canon]
    elif canon == "val" and "test" in splits:  # train/ + test/ export only
        folder = splits["test"]
    else:
        raise _unknown_split(root, split, [splits[s] for s in order])
    # the Kaggle image export puts PublicTest_* and PrivateTest_* in test/
    prefix = {"publictest": "PublicTest_", "privatetest": "PrivateTest_"}.get(key)
    if canon == "val" and folder == splits.get("test"):
        prefix = "PublicTest_"
    return [(os.path.join(root, folder), prefix)]


def _list_images(folder, prefix):
    """Sorted ``[(path, label)]`` of the images in ``folder/<class>/``.

    With a ``prefix`` (e.g. ``PublicTest_``) only matching file names are kept,
    if any file has it. Order: natural sort of file names (``Training_2`` <
    ``Training_10``), then label.
    """
    items = []
    for cname in _subdirs(folder):
        label = _class_index(cname)
        if label is None:
            raise DataError(f"{os.path.join(folder, cname)}: unknown class folder "
                            f"{cname!r} (expected one of {', '.join(CLASSES)})")
        cdir = os.path.join(folder, cname)
        for e in os.scandir(cdir):
            if e.is_file() and not e.name.startswith(".") \
                    and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS:
                items.append((e.name, label, e.path))
    if prefix and any(n.startswith(prefix) for n, _, _ in items):
        items = [it for it in items if it[0].startswith(prefix)]
    items.sort(key=lambda it: (_natural_key(it[0]), it[1]))
    return [(p, lab) for _, lab, p in items]


def _read_image(path):
    """One image -> uint8 ``(48, 48)`` grey (:func:`minifer.fer.images.load_image`;
    bilinear resize if needed)."""
    try:
        gray = to_gray_array(load_image(path))
    except ImageError as e:
        reason = str(e)
        if reason.startswith(f"{path}: "):
            reason = reason[len(f"{path}: "):]
        raise DataError(f"{path}: unreadable image ({reason})") from None
    if gray.shape != (SIZE, SIZE):
        from PIL import Image
        gray = np.asarray(Image.fromarray(gray).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    return gray


def _load_folder(root, split, cache):
    parts = _resolve_folder(root, split)
    items = [it for folder, prefix in parts for it in _list_images(folder, prefix)]
    if not items:
        raise DataError(f"{root}: no images found for split {split!r}")
    h = hashlib.sha256()
    for p, lab in items:
        st = os.stat(p)
        h.update(f"{p}|{lab}|{st.st_size}|{st.st_mtime_ns}\n".encode())

    def build():
        x = np.empty((len(items), SIZE, SIZE), dtype=np.uint8)
        for i, (p, _) in enumerate(items):
            x[i] = _read_image(p)
        return x, np.array([lab for _, lab in items], dtype=np.uint8)

    return _cached("folder", root, h.hexdigest(), split, cache, build)


# ----------------------------------------------------------------------------
# npz
# ----------------------------------------------------------------------------
def _npz_splits(files):
    """Split names that have both ``x_<s>`` and ``y_<s>`` (or ``""`` for x/y)."""
    names = [k[2:] for k in files if k.startswith("x_") and "y_" + k[2:] in files]
    if "x" in files and "y" in files:
        names.append("")
    rank = {"train": 0, "val": 1, "test": 2}
    return sorted(names, key=lambda s: (rank.get(canonical_split(s), 3), s))


def _load_npz(path, split):
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: cannot read npz ({e})") from None
    with z:
        splits = _npz_splits(z.files)
        if not splits:
            raise DataError(f"{path}: npz needs keys x_<split>/y_<split> (or x/y), "
                            f"has {', '.join(z.files)}")
        if split is None:
            chosen = splits
        else:
            key = str(split).strip().lower()
            by_canon = {canonical_split(s): s for s in splits if s}
            if key in splits:
                chosen = [key]
            elif canonical_split(key) in by_canon:
                chosen = [by_canon[canonical_split(key)]]
            else:
                raise _unknown_split(path, split, [s or "(x/y)" for s in splits])
        remap = _npz_class_map(path, z)
        xs, ys = [], []
        for s in chosen:
            kx, ky = ("x_" + s, "y_" + s) if s else ("x", "y")
            try:
                x, y = z[kx], z[ky]
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                raise DataError(f"{path}: cannot read {kx}/{ky} ({e})") from None
            x, y = _check_arrays(f"{path}[{kx}]", x, y)
            xs.append(x)
            ys.append(remap[y] if remap is not None else y)
    if len(xs) == 1:
        return xs[0], ys[0]
    return np.concatenate(xs), np.concatenate(ys)


def _npz_class_map(path, z):
    """Label remap array if the npz ``classes`` order differs from CLASSES."""
    if "classes" not in z.files:
        return None
    try:
        names = [str(c).strip().lower() for c in z["classes"]]
    except ValueError as e:
        raise DataError(f"{path}: cannot read 'classes' ({e})") from None
    if tuple(names) == CLASSES:
        return None
    idx = [_class_index(c) for c in names]
    if None in idx:
        bad = names[idx.index(None)]
        raise DataError(f"{path}: unknown class name {bad!r} in 'classes'")
    return np.array(idx, dtype=np.uint8)


def _check_arrays(where, x, y):
    """Validate / coerce npz arrays to uint8 ``(N,48,48)`` and uint8 ``(N,)``."""
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    elif x.ndim == 2 and x.shape[1] == NPIX:
        x = x.reshape(-1, SIZE, SIZE)
    if x.ndim != 3 or x.shape[1:] != (SIZE, SIZE):
        raise DataError(f"{where}: expected images of shape (N, 48, 48), got {x.shape}")
    if x.dtype != np.uint8:
        if x.size and (x.min() < 0 or x.max() > 255 or np.any(x != np.round(x))):
            raise DataError(f"{where}: pixel values must be integers 0..255 (dtype {x.dtype})")
        x = x.astype(np.uint8)
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers of shape ({x.shape[0]},), "
                        f"got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        i = int(np.argmax((y < 0) | (y >= NUM_CLASSES)))
        raise DataError(f"{where}: unknown label {int(y[i])} at index {i} "
                        f"(expected 0..{NUM_CLASSES - 1})")
    return x, y.astype(np.uint8)


# ----------------------------------------------------------------------------
# class balance
# ----------------------------------------------------------------------------
def class_counts(y, k=NUM_CLASSES):
    """Number of samples per class: int64 ``(k,)``."""
    return np.bincount(np.asarray(y, dtype=np.int64).ravel(), minlength=k)[:k]


def class_weights(y, power=1.0, k=NUM_CLASSES):
    """Inverse-frequency class weights, float32 ``(k,)``.

    ``w_c = n_c ** -power``, rescaled so the mean over the classes present in
    ``y`` is 1 (absent classes get 0). ``power=1`` fully balances the expected
    loss, ``power=0.5`` is a milder "sqrt" weighting, ``power=0`` gives ones.
    """
    counts = class_counts(y, k).astype(np.float64)
    present = counts > 0
    w = np.zeros(k, dtype=np.float64)
    w[present] = counts[present] ** -float(power)
    if present.any():
        w[present] /= w[present].mean()
    return w.astype(np.float32)


def balanced_sampler_indices(y, n, rng, power=1.0):
    """``n`` indices into ``y`` drawn with replacement, classes rebalanced.

    Sample ``i`` is drawn with probability ``p_i ∝ n_{y_i} ** -power``; with
    ``power=1`` every present class is equally likely (``1/K`` each), with
    ``power=0`` it is plain uniform resampling. ``rng`` is a
    ``numpy.random.Generator`` (or a seed).
    """
    rng = np.random.default_rng(rng)
    y = np.asarray(y, dtype=np.int64).ravel()
    if y.size == 0:
        raise ValueError("balanced_sampler_indices: empty label array")
    counts = np.bincount(y).astype(np.float64)
    p = counts[y] ** -float(power)
    p /= p.sum()
    return rng.choice(y.size, size=int(n), replace=True, p=p)


# ----------------------------------------------------------------------------
# model input
# ----------------------------------------------------------------------------
def pixel_mean_std(x, chunk=4096):
    """Mean and std of ``x / 255`` over all pixels (float64 accumulation)."""
    x = np.asarray(x)
    s = ss = 0.0
    for i in range(0, len(x), chunk):
        c = x[i:i + chunk].astype(np.float64) / 255.0
        s += c.sum()
        ss += np.square(c).sum()
    n = max(x.size, 1)
    mean = s / n
    return float(mean), float(np.sqrt(max(ss / n - mean * mean, 0.0)))


def to_model_input(x_uint8, mean, std):
    """uint8 faces -> float32 NHWC model input ``(x / 255 - mean) / std``.

    ``x_uint8``: ``(N, H, W)`` or ``(N, H, W, 1)`` (a single ``(H, W)`` face
    becomes ``N = 1``). Returns float32 ``(N, H, W, 1)``. The same as
    :func:`minifer.fer.classes.model_input` for a model whose metadata holds
    ``gray_preprocess(mean, std)``; with a model at hand, call that instead.
    """
    return model_input(x_uint8, {"preprocess": gray_preprocess(mean, std)})
