"""Tests for minifer.fer.images: every fixture is a tiny file made with Pillow."""
import os
import stat

import numpy as np
import pytest
from PIL import Image, ImageFile

from minifer.fer import images
from minifer.fer.images import (ImageError, iter_image_paths, load_image,
                            save_image_atomic, to_gray_array, to_rgb_array)


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def _gradient(w=32, h=24):
    x = np.linspace(0, 255, w, dtype=np.float64)
    return np.tile(x, (h, 1)).astype(np.uint8)


# ---------------------------------------------------------------- modes

def test_mode_L(tmp_path):
    a = _gradient()
    im = load_image(_save(Image.fromarray(a), tmp_path / "g.png"))
    assert im.mode == "L" and im.size == (32, 24)
    np.testing.assert_array_equal(to_gray_array(im), a)


def test_mode_1(tmp_path):
    a = np.zeros((8, 8), bool)
    a[:, 4:] = True
    im = load_image(_save(Image.fromarray(a).convert("1"), tmp_path / "b.png"))
    assert im.mode == "L"
    g = to_gray_array(im)
    assert g[:, :4].max() == 0 and g[:, 4:].min() == 255


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_composited_on_white(tmp_path, mode):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 200                     # red (or gray level) 200
    a[:2, :, 3] = 255                   # top half opaque
    a[2:, :, 3] = 0                     # bottom half transparent
    im = Image.fromarray(a, "RGBA")
    if mode == "LA":
        im = Image.merge("LA", (im.getchannel("R"), im.getchannel("A")))
    out = load_image(_save(im, tmp_path / "a.png"))
    assert out.mode == ("RGB" if mode == "RGBA" else "L")
    g = np.asarray(out)
    assert (g[2:] == 255).all()         # transparent -> white
    if mode == "RGBA":
        assert tuple(g[0, 0]) == (200, 0, 0)
    else:
        assert g[0, 0] == 200


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (0, 2, 4, 4))           # bottom half uses index 1 (blue)
    im.info["transparency"] = 1
    path = _save(im, tmp_path / "p.png", transparency=1)
    out = load_image(path)
    assert out.mode == "RGB"
    rgb = to_rgb_array(out)
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert (rgb[2:] == 255).all()


def test_palette_plain(tmp_path):
    im = Image.fromarray(_gradient()).convert("RGB").convert("P")
    assert load_image(_save(im, tmp_path / "p.png")).mode == "RGB"


@pytest.mark.parametrize("ext", ["jpg", "tif"])
def test_cmyk(tmp_path, ext):
    a = np.zeros((8, 8, 4), np.uint8)
    a[:, 4:, 0] = 255                   # right half: full cyan
    path = _save(Image.fromarray(a, "CMYK"), tmp_path / f"c.{ext}")
    out = to_rgb_array(load_image(path))
    assert out.shape == (8, 8, 3)
    assert (out[:, :2] > 240).all()                 # no ink -> white
    r, g, b = out[4, 6].astype(int)
    assert r < 40 and g > 200 and b > 200           # cyan


def test_16bit_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 257, 32896, 65535]], np.uint16)
    im = Image.fromarray(a)
    assert im.mode == "I;16"
    for ext in ("png", "tif"):
        out = load_image(_save(im, tmp_path / f"d16.{ext}"))
        assert out.mode == "L"
        assert to_gray_array(out).tolist() == [[0, 1, 128, 255]]


def test_32bit_int_and_float(tmp_path):
    i_small = Image.fromarray(np.array([[0, 100, 255]], np.int32), "I")
    assert to_gray_array(load_image(_save(i_small, tmp_path / "i.tif"))).tolist() == [[0, 100, 255]]
    i_wide = Image.fromarray(np.array([[-10, 0, 10]], np.int32), "I")
    assert to_gray_array(load_image(_save(i_wide, tmp_path / "iw.tif"))).tolist() == [[0, 128, 255]]
    f_unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    assert to_gray_array(load_image(_save(f_unit, tmp_path / "f.tif"))).tolist() == [[0, 128, 255]]
    f_wide = Image.fromarray(np.array([[-2.0, 0.0, 2.0]], np.float32), "F")
    assert to_gray_array(load_image(_save(f_wide, tmp_path / "fw.tif"))).tolist() == [[0, 128, 255]]


# -------------------------------------------------------------- formats

@pytest.mark.parametrize("ext,kw", [
    ("jpg", {"quality": 95}), ("png", {}), ("bmp", {}), ("webp", {"quality": 95}),
    ("tif", {}), ("gif", {}), ("ppm", {}),
])
def test_formats_round_trip(tmp_path, ext, kw):
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, 16:] = (0, 200, 0)
    path = _save(Image.fromarray(rgb), tmp_path / f"x.{ext}", **kw)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (32, 24)
    a = to_rgb_array(out).astype(int)
    assert abs(a[12, 24, 1] - 200) < 12 and a[12, 4].max() < 12


def test_animated_gif_first_frame(tmp_path):
    red = Image.new("RGB", (10, 10), (255, 0, 0))
    blue = Image.new("RGB", (10, 10), (0, 0, 255))
    green = Image.new("RGB", (10, 10), (0, 255, 0))
    path = tmp_path / "anim.gif"
    red.save(path, save_all=True, append_images=[blue, green], duration=50, loop=0)
    with Image.open(path) as check:
        assert check.n_frames == 3
    assert tuple(to_rgb_array(load_image(path))[5, 5]) == (255, 0, 0)


def test_exif_orientation_applied(tmp_path):
    a = np.full((20, 40), 255, np.uint8)    # stored landscape 40x20
    a[:, :20] = 0                           # left half black
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6                        # "rotate 90 CW to display"
    path = _save(im, tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(path)
    assert out.size == (20, 40)             # now portrait
    g = to_gray_array(out)
    assert g[:20].mean() < 30 and g[20:].mean() > 225   # left went to top


# --------------------------------------------------------------- errors

def _err(path):
    with pytest.raises(ImageError) as ei:
        load_image(path)
    msg = str(ei.value)
    assert os.fspath(path) in msg and "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    assert "no such file" in _err(tmp_path / "nope.jpg")


def test_directory(tmp_path):
    assert "directory" in _err(tmp_path)


def test_zero_byte(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    assert "empty" in _err(p)


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n" * 20)
    assert "not an image" in _err(p)


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_truncated(tmp_path, ext):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = _save(Image.fromarray(a), tmp_path / f"full.{ext}")
    data = full.read_bytes()
    for cut in (len(data) // 2, len(data) - 40):
        p = tmp_path / f"cut{cut}.{ext}"
        p.write_bytes(data[:cut])
        msg = _err(p)
        assert "truncated" in msg or "corrupt" in msg
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_own_limit(tmp_path, monkeypatch):
    p = _save(Image.new("L", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 5000)
    assert "too large" in _err(p)


@pytest.mark.parametrize("pillow_limit", [7000, 4000])   # warning / error path
def test_decompression_bomb_pillow(tmp_path, monkeypatch, pillow_limit):
    p = _save(Image.new("L", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
    assert "too large" in _err(p)


def test_decompression_bomb_real_header(tmp_path):
    """A tiny PNG whose header claims 20000x20000 px is refused before decoding."""
    import struct
    import zlib
    small = _save(Image.new("L", (1, 1)), tmp_path / "small.png").read_bytes()
    ihdr = bytearray(small[12:29])                 # b"IHDR" + 13 data bytes
    ihdr[4:12] = struct.pack(">II", 20000, 20000)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    p = tmp_path / "bomb.png"
    p.write_bytes(small[:12] + bytes(ihdr) + crc + small[33:])
    assert "too large" in _err(p)


def test_default_pixel_limit():
    """minifer's own limit; Pillow's process-wide setting is left as Pillow set it."""
    assert images.MAX_IMAGE_PIXELS == 60_000_000
    assert Image.MAX_IMAGE_PIXELS != images.MAX_IMAGE_PIXELS


# --------------------------------------------------------------- arrays

def test_arrays_from_any_mode():
    rgba = Image.new("RGBA", (5, 3), (10, 20, 30, 255))
    g = to_gray_array(rgba)
    assert g.shape == (3, 5) and g.dtype == np.uint8 and g.flags.writeable
    c = to_rgb_array(Image.new("L", (5, 3), 77))
    assert c.shape == (3, 5, 3) and c.dtype == np.uint8 and (c == 77).all()
    assert to_gray_array(Image.fromarray(np.full((2, 2), 65535, np.uint16))).max() == 255
    with pytest.raises(TypeError):
        to_gray_array(np.zeros((3, 3), np.uint8))


# ---------------------------------------------------------------- paths

def test_iter_image_paths(tmp_path):
    for name in ["b.PNG", "a.jpg", "notes.txt", ".hidden.jpg",
                 "sub/c.jpeg", "sub/deeper/d.webp", ".git/e.jpg"]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    rel = lambda ps: [p.relative_to(tmp_path).as_posix() for p in ps]
    assert rel(iter_image_paths([tmp_path])) == [
        "a.jpg", "b.PNG", "sub/c.jpeg", "sub/deeper/d.webp"]
    assert rel(iter_image_paths(tmp_path, recursive=False)) == ["a.jpg", "b.PNG"]
    # explicit files are yielded whatever their extension; missing ones too
    missing = tmp_path / "missing.jpg"
    got = list(iter_image_paths([str(tmp_path / "notes.txt"), missing, tmp_path / "sub"]))
    assert rel(got) == ["notes.txt", "missing.jpg", "sub/c.jpeg", "sub/deeper/d.webp"]


# ----------------------------------------------------------------- save

def test_save_image_atomic(tmp_path):
    rgba = Image.new("RGBA", (6, 4), (0, 0, 255, 0))
    out = tmp_path / "new" / "out.jpg"
    save_image_atomic(rgba, out, quality=90)        # RGBA -> JPEG works
    back = load_image(out)
    assert back.size == (6, 4) and to_rgb_array(back).min() > 240   # white
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    png = tmp_path / "new" / "out.png"
    save_image_atomic(Image.fromarray(_gradient()), png)
    np.testing.assert_array_equal(to_gray_array(load_image(png)), _gradient())
    assert sorted(os.listdir(tmp_path / "new")) == ["out.jpg", "out.png"]
    with pytest.raises(ImageError):
        save_image_atomic(rgba, tmp_path / "out.unknownext")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]
