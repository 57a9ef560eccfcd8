"""Robust image reading and writing on top of Pillow.

:func:`load_image` turns anything Pillow can open (JPEG, PNG, BMP, WebP, GIF,
TIFF, PNM; modes 1, L, LA, P, RGB, RGBA, CMYK, I;16, I, F, ...) into an
upright ``"L"`` or ``"RGB"`` image, or raises :class:`ImageError` with a
one-line message that names the file. Files are fully decoded on load so a
truncated file fails here, not later (this relies on Pillow's default
``ImageFile.LOAD_TRUNCATED_IMAGES = False``, which this module never changes);
oversized images (decompression bombs) are refused.
"""
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..io import atomic_write

# Refuse images above this many pixels, checked from the header before decoding
# (Pillow's own, process-wide limit is left alone; its warning and error become
# ImageError too). 60 MP fits ordinary camera photos.
MAX_IMAGE_PIXELS = 60_000_000

# Extensions picked up when a folder is expanded (lower case, with the dot).
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif",
    ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm",
})


class ImageError(ValueError):
    """An image file is missing, unreadable, corrupt or too large."""


class ImageTooLarge(ImageError):
    """An image over :data:`MAX_IMAGE_PIXELS`, refused before decoding (a possible decompression bomb)."""


def load_image(path):
    """Read ``path`` fully and return an upright ``"L"`` or ``"RGB"`` image.

    EXIF orientation is applied, transparency is composited onto white, the
    first frame of an animation is used and 16-bit / float data is scaled
    (not clipped) to 8 bits. Any failure raises :class:`ImageError`.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ImageError(f"{p}: no such file")
    if os.path.isdir(p):
        raise ImageError(f"{p}: is a directory, not an image file")
    try:
        f = open(p, "rb")
    except OSError as e:
        raise ImageError(f"{p}: cannot open file "
                         f"({_oneline(e.strerror or e)})") from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ImageError(f"{p}: empty file (0 bytes)")
        return decode_image(f, p)


def decode_image(f, name):
    """:func:`load_image` for an open binary file (e.g. ``io.BytesIO`` of uploaded bytes);
    errors are :class:`ImageError` messages that start with ``name``."""
    try:
        return _decode(f)
    except ImageError as e:
        raise type(e)(f"{name}: {e}") from None
    except (Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise ImageTooLarge(f"{name}: image too large, refused as a possible "
                         f"decompression bomb ({_oneline(e)})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or an unsupported format") from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode image") from None
    except Exception as e:  # Pillow plugins raise many types on bad data
        raise ImageError(f"{name}: corrupt or truncated image ({_oneline(e)})") from None


def _decode(f):
    """Open, size-check, fully decode, orient and normalize an image file."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(f) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(
                    f"{w}x{h} = {w * h} pixels, limit {MAX_IMAGE_PIXELS}")
            im.load()  # full decode of frame 0: detects truncation
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # broken EXIF: keep the pixels as stored
                im = im.copy()
            return _normalize(im)


def _oneline(e):
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg[:200]


def _normalize(im):
    """Convert a loaded image of any mode to an ``"L"`` or ``"RGB"`` image."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(im))
    if mode == "P":
        if "transparency" in im.info:
            return _on_white(im.convert("RGBA"))
        return im.convert("RGB")
    if mode in ("RGBA", "RGBa", "PA"):
        return _on_white(im.convert("RGBA"))
    if mode in ("LA", "La"):
        return _on_white(im.convert("LA"))
    try:  # CMYK, YCbCr, HSV, ...
        return im.convert("RGB")
    except (ValueError, OSError):
        raise ImageError(f"unsupported image mode {mode!r}") from None


def _on_white(im):
    """Composite an ``"LA"`` / ``"RGBA"`` image onto a white background."""
    base = im.mode[:-1]  # "L" or "RGB"
    out = Image.new(base, im.size, 255 if base == "L" else (255, 255, 255))
    out.paste(im.convert(base), mask=im.getchannel("A"))
    return out


def _to_uint8(im):
    """Scale 16-bit, 32-bit integer or float pixel data to uint8.

    16-bit data maps 0..65535 linearly to 0..255. ``"I"`` data already in
    0..255 is kept, in 0..65535 is scaled like 16-bit, else min-max stretched.
    ``"F"`` data in 0..1 is multiplied by 255, else min-max stretched.
    """
    mode = im.mode
    a = np.asarray(im)
    if mode.startswith("I;16"):
        a = a.astype(np.float64) * (255.0 / 65535.0)
    else:
        a = a.astype(np.float64)
        finite = np.isfinite(a)
        lo = float(a[finite].min()) if finite.any() else 0.0
        hi = float(a[finite].max()) if finite.any() else 0.0
        a = np.where(finite, a, lo)
        if mode == "F" and lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif mode == "I" and lo >= 0 and hi <= 255:
            pass
        elif mode == "I" and lo >= 0 and hi <= 65535:
            a = a * (255.0 / 65535.0)
        elif hi > lo:
            a = (a - lo) * (255.0 / (hi - lo))
        else:
            a = np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _as_normalized(img):
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(img).__name__}")
    if img.mode in ("L", "RGB"):
        return img
    img.load()
    return _normalize(img)


def to_gray_array(img):
    """Return a PIL image as a writable ``uint8`` array of shape ``(H, W)``.

    Colour is converted with the ITU-R 601 luma weights (as OpenCV does).
    """
    img = _as_normalized(img)
    if img.mode != "L":
        img = img.convert("L")
    return np.array(img, dtype=np.uint8)


def to_rgb_array(img):
    """Return a PIL image as a writable ``uint8`` array of shape ``(H, W, 3)``."""
    img = _as_normalized(img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def _is_hidden(name):
    return name.startswith(".")


def iter_image_paths(paths, recursive=True, extensions=IMAGE_EXTENSIONS):
    """Yield image files named by ``paths`` as :class:`pathlib.Path` objects.

    ``paths`` is one path or an iterable of paths. Folders are expanded in
    sorted order to the files with one of ``extensions`` (lower case, with the dot;
    ``""`` takes files without one), skipping hidden files and folders (into
    sub-folders only if ``recursive``). Files and paths that do not exist are
    yielded as given, so the caller can report them.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    for item in paths:
        p = Path(os.fsdecode(item))
        if not p.is_dir():
            yield p
            continue
        if recursive:
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
                for name in sorted(files):
                    if (not _is_hidden(name)
                            and os.path.splitext(name)[1].lower() in extensions):
                        yield Path(root) / name
        else:
            for child in sorted(p.iterdir(), key=lambda c: c.name):
                if (not _is_hidden(child.name) and child.is_file()
                        and child.suffix.lower() in extensions):
                    yield child


def save_image_atomic(img, path, **save_kwargs):
    """Save ``img`` to ``path`` atomically; the format comes from the extension.

    The image is written to a temporary file in the same folder which is then
    renamed over ``path``, so readers never see half a file. Modes the format
    cannot store (e.g. RGBA as JPEG) are converted first. ``save_kwargs`` go
    to :meth:`PIL.Image.Image.save` (e.g. ``quality=90``).
    """
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise ImageError(f"{p}: unknown image file extension {ext!r}")
    if fmt == "JPEG" and img.mode not in ("L", "RGB", "CMYK"):
        img = _as_normalized(img)
    atomic_write(p, lambda f: img.save(f, format=fmt, **save_kwargs), suffix=ext)
