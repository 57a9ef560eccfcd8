"""Tests for minifer.fer.data: csv / image-folder / npz loading, cache, balance helpers."""
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minifer.fer import data
from minifer.fer.data import CLASSES, DataError, load_fer

SHARED_NPZ = (Path(__file__).resolve().parents[1].parent
              / "shared" / "data" / "fer2013" / "fer2013_train_val.npz")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache."""
    monkeypatch.setenv("MINIFER_CACHE", str(tmp_path / "cache"))


def face(seed):
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def pix(img):
    return " ".join(str(v) for v in np.asarray(img).ravel())


def write_csv(path, rows, header="emotion,pixels,Usage"):
    lines = [header] + [",".join(str(f) for f in r) for r in rows]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def small_csv(tmp_path):
    usages = ["Training", "Training", "PublicTest", "PrivateTest", "Training", "PublicTest"]
    imgs = [face(i) for i in range(len(usages))]
    labels = [0, 3, 6, 1, 5, 4]
    path = write_csv(tmp_path / "fer2013.csv",
                     [(lab, pix(im), u) for lab, im, u in zip(labels, imgs, usages)])
    return path, np.stack(imgs), np.array(labels, np.uint8), np.array(usages)


# ----------------------------------------------------------------------------- csv
def test_csv_all_rows(small_csv):
    path, imgs, labels, _ = small_csv
    x, y = load_fer(path)
    assert x.dtype == np.uint8 and x.shape == (6, 48, 48)
    assert y.dtype == np.uint8 and y.shape == (6,)
    np.testing.assert_array_equal(x, imgs)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("split,usage", [
    ("Training", "Training"), ("train", "Training"), ("TRAINING", "Training"),
    ("PublicTest", "PublicTest"), ("val", "PublicTest"), ("validation", "PublicTest"),
    ("valid", "PublicTest"), ("privatetest", "PrivateTest"), ("test", "PrivateTest"),
])
def test_csv_splits(small_csv, split, usage):
    path, imgs, labels, usages = small_csv
    x, y = load_fer(path, split=split)
    keep = usages == usage
    np.testing.assert_array_equal(x, imgs[keep])
    np.testing.assert_array_equal(y, labels[keep])


def test_csv_unknown_split_lists_available(small_csv):
    with pytest.raises(DataError, match="unknown split 'holdout'.*Training.*PublicTest"):
        load_fer(small_csv[0], split="holdout")


def test_csv_tolerates_whitespace_quotes_crlf(tmp_path):
    img = face(7)
    messy = "  " + pix(img).replace(" ", "  ", 5) + "\t"
    path = tmp_path / "messy.csv"
    path.write_bytes(f'emotion,pixels,Usage\r\n3,"{messy}",Training\r\n\r\n'.encode())
    x, y = load_fer(path, cache=False)
    np.testing.assert_array_equal(x[0], img)
    assert y.tolist() == [3]


def test_csv_without_usage_column(tmp_path):
    path = write_csv(tmp_path / "train.csv", [(2, pix(face(1)))], header="emotion,pixels")
    x, y = load_fer(path)
    assert x.shape == (1, 48, 48) and y.tolist() == [2]
    with pytest.raises(DataError, match="unknown split"):
        load_fer(path, split="train")


GOOD = pix(np.full((48, 48), 9))


@pytest.mark.parametrize("bad_row,message", [
    ((0, GOOD), "malformed row"),
    ((0, GOOD, "Training", "extra"), "malformed row"),
    ((0, " ".join(["1"] * 2303), "Training"), "expected 2304 pixel values, got 2303"),
    ((0, " ".join(["1"] * 2305), "Training"), "got 2305"),
    ((0, "", "Training"), "got 0"),
    ((7, GOOD, "Training"), "unknown label 7"),
    ((-1, GOOD, "Training"), "unknown label -1"),
    (("happy", GOOD, "Training"), "bad label 'happy'"),
    ((1, GOOD.replace("9", "12a", 1), "Training"), "integers 0..255"),
    ((1, GOOD.replace("9", "256", 1), "Training"), "integers 0..255"),
    ((1, GOOD.replace("9", "1000", 1), "Training"), "integers 0..255"),
    ((1, GOOD.replace("9", "-3", 1), "Training"), "integers 0..255"),
])
def test_csv_errors_name_file_and_row(tmp_path, bad_row, message):
    path = write_csv(tmp_path / "bad.csv", [(1, GOOD, "Training"), bad_row, (2, GOOD, "Training")])
    with pytest.raises(DataError) as err:
        load_fer(path, cache=False)
    text = str(err.value)
    assert "bad.csv" in text and "row 2 (line 3)" in text and message in text
    assert "\n" not in text
    assert isinstance(err.value, ValueError)


def test_csv_bad_header(tmp_path):
    path = write_csv(tmp_path / "h.csv", [(1, GOOD)], header="label,image")
    with pytest.raises(DataError, match="line 1.*'emotion' and 'pixels'"):
        load_fer(path)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_fer(tmp_path / "nope.csv")
    other = tmp_path / "data.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="unsupported"):
        load_fer(other)


def test_csv_decoding_is_fast(tmp_path):
    rng = np.random.default_rng(0)
    pool = [pix(rng.integers(0, 256, (48, 48))) for _ in range(16)]
    n = 3000
    labels = rng.integers(0, 7, n)
    path = tmp_path / "big.csv"
    path.write_text("emotion,pixels,Usage\n" + "".join(
        f"{labels[i]},{pool[i % 16]},Training\n" for i in range(n)))
    t0 = time.process_time()
    x, y = load_fer(path, cache=False)
    elapsed = time.process_time() - t0
    assert x.shape == (n, 48, 48)
    np.testing.assert_array_equal(y, labels)
    assert " ".join(map(str, x[5].ravel())) == pool[5]
    assert elapsed < 1.0, f"decoding 3000 rows took {elapsed:.2f} s of CPU"


# ----------------------------------------------------------------------------- cache
def test_cache_hit_and_invalidation(small_csv, tmp_path, monkeypatch):
    path, imgs, _, _ = small_csv
    cdir = tmp_path / "cache"
    x1, y1 = load_fer(path, split="train")
    files = sorted(cdir.glob("*.npz"))
    assert len(files) == 1 and not list(cdir.glob(".tmp-*"))

    def boom(*a, **k):
        raise AssertionError("csv parsed again instead of using the cache")

    monkeypatch.setattr(data, "_parse_csv", boom)
    x2, y2 = load_fer(path, split="Training")  # alias: same cache entry
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(AssertionError):
        load_fer(path, split="val")  # another split: not cached yet
    with pytest.raises(AssertionError):
        load_fer(path, split="train", cache=False)
    monkeypatch.undo()
    monkeypatch.setenv("MINIFER_CACHE", str(cdir))

    # rewriting the file (new size / mtime) invalidates the entry
    write_csv(path, [(5, pix(face(99)), "Training")])
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    x3, y3 = load_fer(path, split="train")
    assert x3.shape == (1, 48, 48) and y3.tolist() == [5]


def test_corrupt_cache_is_rebuilt(small_csv, tmp_path):
    path = small_csv[0]
    x1, _ = load_fer(path)
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(b"not a zip")
    x2, _ = load_fer(path)
    np.testing.assert_array_equal(x1, x2)


# ----------------------------------------------------------------------------- folders
def save_img(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder_tree(tmp_path):
    root = tmp_path / "fer"
    a, b, c = face(1), face(2), face(3)
    save_img(root / "train" / "happy" / "Training_10.png", a)
    save_img(root / "train" / "Sad" / "Training_2.png", b)
    save_img(root / "train" / "happy" / "Training_1.png", c)
    rgb = np.random.default_rng(4).integers(0, 256, (64, 60, 3), dtype=np.uint8)
    save_img(root / "train" / "ANGRY" / "Training_3.png", rgb)
    save_img(root / "test" / "neutral" / "PublicTest_5.png", face(5))
    save_img(root / "test" / "fear" / "PrivateTest_6.png", face(6))
    (root / "train" / "happy" / "notes.txt").write_text("ignored")
    (root / "train" / "happy" / ".DS_Store").write_bytes(b"\0")
    return root, {"a": a, "b": b, "c": c}


def test_folder_train_split(folder_tree):
    root, im = folder_tree
    x, y = load_fer(root, split="train")
    assert x.dtype == np.uint8 and x.shape == (4, 48, 48)
    # natural order of file names: Training_1, _2, _3, _10
    assert y.tolist() == [CLASSES.index(c) for c in ("happy", "sad", "angry", "happy")]
    np.testing.assert_array_equal(x[0], im["c"])
    np.testing.assert_array_equal(x[1], im["b"])
    np.testing.assert_array_equal(x[3], im["a"])
    x2, y2 = load_fer(root, split="Training")
    np.testing.assert_array_equal(x, x2)


def test_folder_test_splits_and_kaggle_prefixes(folder_tree):
    root, _ = folder_tree
    _, y = load_fer(root, split="test")
    assert sorted(y.tolist()) == [2, 6]
    _, y = load_fer(root, split="PublicTest")     # no val/ folder: test/ + prefix
    assert y.tolist() == [CLASSES.index("neutral")]
    _, y = load_fer(root, split="val")
    assert y.tolist() == [CLASSES.index("neutral")]
    _, y = load_fer(root, split="PrivateTest")
    assert y.tolist() == [CLASSES.index("fear")]
    x, y = load_fer(root)                         # all splits: train then test
    assert x.shape == (6, 48, 48) and y.tolist()[:4] == [3, 4, 0, 3]


def test_folder_val_folder_and_unknown_split(tmp_path):
    root = tmp_path / "r"
    save_img(root / "train" / "happy" / "1.png", face(1))
    save_img(root / "validation" / "sad" / "1.png", face(2))
    _, y = load_fer(root, split="PublicTest")
    assert y.tolist() == [4]
    with pytest.raises(DataError, match="unknown split 'test'.*train.*validation"):
        load_fer(root, split="test")


def test_folder_of_class_folders(folder_tree):
    root, im = folder_tree
    x, y = load_fer(root / "train")
    assert x.shape == (4, 48, 48)
    x2, _ = load_fer(root / "train", split="train")
    np.testing.assert_array_equal(x, x2)
    with pytest.raises(DataError, match="single split"):
        load_fer(root / "train", split="test")


def test_folder_resizes_and_greys(folder_tree):
    root, _ = folder_tree
    x, y = load_fer(root / "train")
    angry = x[list(y).index(0)]
    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    with Image.open(root / "train" / "ANGRY" / "Training_3.png") as im:
        rgb = np.asarray(im.convert("L").resize((48, 48), bilinear))
    np.testing.assert_array_equal(angry, rgb)


def test_folder_jpeg(tmp_path):
    root = tmp_path / "j"
    img = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))
    save_img(root / "surprise" / "a.jpg", img)
    x, y = load_fer(root)
    assert y.tolist() == [5]
    assert np.abs(x[0].astype(int) - img).max() < 12  # lossy


def test_folder_errors(tmp_path):
    root = tmp_path / "bad"
    save_img(root / "train" / "happy" / "1.png", face(1))
    save_img(root / "train" / "smiling" / "2.png", face(2))
    with pytest.raises(DataError, match="smiling.*unknown class folder"):
        load_fer(root, split="train")

    root2 = tmp_path / "bad2"
    save_img(root2 / "train" / "happy" / "1.png", face(1))
    broken = root2 / "train" / "happy" / "2.png"
    broken.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"2\.png: unreadable image"):
        load_fer(root2, split="train", cache=False)

    empty = tmp_path / "empty" / "train" / "happy"
    empty.mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_fer(tmp_path / "empty", split="train")


def test_folder_cache(folder_tree, monkeypatch):
    root, _ = folder_tree
    x1, _ = load_fer(root, split="train")
    monkeypatch.setattr(data, "_read_image", lambda p: (_ for _ in ()).throw(AssertionError))
    x2, _ = load_fer(root, split="train")
    np.testing.assert_array_equal(x1, x2)


# ----------------------------------------------------------------------------- npz
@pytest.fixture
def small_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (5, 48, 48), dtype=np.uint8),
                  y_train=np.array([0, 1, 2, 3, 6], np.uint8),
                  x_val=rng.integers(0, 256, (2, 48, 48), dtype=np.uint8),
                  y_val=np.array([4, 5], np.uint8),
                  classes=np.array(CLASSES))
    path = tmp_path / "fer.npz"
    np.savez_compressed(path, **arrays)
    return path, arrays


@pytest.mark.parametrize("split,key", [("train", "train"), ("Training", "train"),
                                       ("val", "val"), ("PublicTest", "val"),
                                       ("VALIDATION", "val")])
def test_npz_splits(small_npz, split, key):
    path, a = small_npz
    x, y = load_fer(path, split=split)
    np.testing.assert_array_equal(x, a["x_" + key])
    np.testing.assert_array_equal(y, a["y_" + key])
    assert x.dtype == np.uint8 and y.dtype == np.uint8


def test_npz_all_and_unknown(small_npz):
    path, a = small_npz
    x, y = load_fer(path)
    assert x.shape == (7, 48, 48)
    np.testing.assert_array_equal(y, np.r_[a["y_train"], a["y_val"]])
    with pytest.raises(DataError, match="unknown split 'test'; available: train, val"):
        load_fer(path, split="test")


def test_npz_errors_and_coercion(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, x_train=np.zeros((2, 48, 48, 1), np.float32), y_train=np.array([0, 9]))
    with pytest.raises(DataError, match="unknown label 9 at index 1"):
        load_fer(p)
    np.savez(p, x_train=np.full((2, 2304), 7.0), y_train=np.array([0, 1]))
    x, y = load_fer(p)
    assert x.dtype == np.uint8 and x.shape == (2, 48, 48) and x[0, 0, 0] == 7
    np.savez(p, x_train=np.zeros((2, 32, 32), np.uint8), y_train=np.array([0, 1]))
    with pytest.raises(DataError, match=r"\(N, 48, 48\)"):
        load_fer(p)
    np.savez(p, images=np.zeros((2, 48, 48), np.uint8))
    with pytest.raises(DataError, match="x_<split>"):
        load_fer(p)
    (tmp_path / "broken.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="broken.npz"):
        load_fer(tmp_path / "broken.npz")


def test_npz_class_order_is_remapped(tmp_path):
    p = tmp_path / "b.npz"
    order = ["happy", "sad", "angry", "disgust", "fear", "surprise", "neutral"]
    np.savez(p, x=np.zeros((3, 48, 48), np.uint8), y=np.array([0, 1, 2]), classes=np.array(order))
    _, y = load_fer(p)
    assert [CLASSES[i] for i in y] == ["happy", "sad", "angry"]


def _npy_shape(zf, name):
    with zf.open(name) as f:
        major, _ = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if major == 1
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    return shape, dtype


def test_shared_fer_npz():
    if not SHARED_NPZ.exists():
        pytest.skip(f"{SHARED_NPZ} not present")
    with zipfile.ZipFile(SHARED_NPZ) as zf:  # headers only: no 66 MB decompression
        assert _npy_shape(zf, "x_train.npy") == ((28709, 48, 48), np.dtype(np.uint8))
        assert _npy_shape(zf, "x_val.npy") == ((3589, 48, 48), np.dtype(np.uint8))
    with np.load(SHARED_NPZ, allow_pickle=False) as z:
        assert tuple(z["classes"]) == CLASSES
        counts = data.class_counts(z["y_train"])
    assert counts.tolist() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    x, y = load_fer(SHARED_NPZ, split="PublicTest")
    assert x.shape == (3589, 48, 48) and x.dtype == np.uint8
    assert data.class_counts(y).tolist() == [467, 56, 496, 895, 653, 415, 607]


# ----------------------------------------------------------------------------- helpers
def test_class_counts_and_weights():
    y = np.array([0, 0, 0, 1, 2, 2], np.uint8)
    assert data.class_counts(y).tolist() == [3, 1, 2, 0, 0, 0, 0]
    w = data.class_weights(y)
    assert w.dtype == np.float32 and w.shape == (7,)
    assert np.allclose(w[:3].mean(), 1.0) and np.all(w[3:] == 0)
    assert np.allclose(w[0] * 3, w[1] * 1) and np.allclose(w[2] * 2, w[1])
    assert np.allclose(data.class_weights(y, power=0)[:3], 1.0)
    half = data.class_weights(y, power=0.5)
    assert w[1] / w[0] > half[1] / half[0] > 1


def test_balanced_sampler():
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    idx = data.balanced_sampler_indices(y, 3000, np.random.default_rng(0))
    assert idx.shape == (3000,) and idx.min() >= 0 and idx.max() < 100
    frac = np.bincount(y[idx], minlength=3) / 3000
    assert np.allclose(frac, 1 / 3, atol=0.04)
    again = data.balanced_sampler_indices(y, 3000, np.random.default_rng(0))
    np.testing.assert_array_equal(idx, again)
    plain = data.balanced_sampler_indices(y, 3000, np.random.default_rng(1), power=0)
    assert np.bincount(y[plain], minlength=3)[0] / 3000 > 0.8


def test_to_model_input_and_stats():
    x = np.array([[[0, 255], [51, 102]]], np.uint8)
    out = data.to_model_input(x, mean=0.5, std=0.25)
    assert out.dtype == np.float32 and out.shape == (1, 2, 2, 1)
    np.testing.assert_allclose(out[0, :, :, 0], [[-2, 2], [-1.2, -0.4]], atol=1e-6)
    assert data.to_model_input(x[..., None], 0, 1).shape == (1, 2, 2, 1)
    assert data.to_model_input(x[0], 0, 1).shape == (1, 2, 2, 1)
    mean, std = data.pixel_mean_std(x)
    v = x / 255.0
    assert np.isclose(mean, v.mean()) and np.isclose(std, v.std())
