"""Sequential: save/load round trips, self-describing metadata, clear errors, atomic writes."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import minifer
from minifer import zoo
from minifer.io import WeightsError, load_npz, save_npz
from minifer.model import load_model


def test_class_names_default_to_numbers_and_must_match():
    assert zoo.minivgg(num_classes=3).meta["classes"] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        zoo.minivgg(num_classes=3, classes=["a", "b"])


def test_save_load_round_trip(tmp_path):
    m = zoo.minivgg(seed=3, classes=["a", "b", "c", "d", "e", "f", "g"])
    m.forward(np.random.default_rng(0).standard_normal((4, 48, 48, 1)).astype(np.float32))  # moves BN stats
    m.meta["preprocess"] = {"color": "gray", "scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    path = tmp_path / "w.npz"
    m.save(path)
    m2 = load_model(path)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, m2.state_dict()[k])
    assert m2.meta["classes"] == list("abcdefg") and m2.meta["input_shape"] == [48, 48, 1]
    assert m2.meta["minifer_version"] == minifer.__version__
    assert m2.meta["preprocess"]["mean"] == [0.5]
    x = np.random.default_rng(1).standard_normal((2, 48, 48, 1)).astype(np.float32)
    m.eval()
    np.testing.assert_array_equal(m.forward(x), m2.forward(x))


def test_float16_file_is_half_size_and_loads_as_float32(tmp_path):
    m = zoo.minivgg()
    m.save(tmp_path / "a.npz")
    m.save(tmp_path / "b.npz", dtype=np.float16)
    assert os.path.getsize(tmp_path / "b.npz") < 0.6 * os.path.getsize(tmp_path / "a.npz")
    arrays, _ = load_npz(tmp_path / "b.npz")
    assert all(a.dtype == np.float32 for a in arrays.values())


def test_metadata_is_plain_json_and_no_pickle(tmp_path):
    save_npz(tmp_path / "w.npz", {"l/W": np.ones(3)}, {"x": 1})
    with np.load(tmp_path / "w.npz", allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes())
    assert meta == {"x": 1, "format": "minifer-weights"}


@pytest.mark.parametrize("content", [b"", b"not a zip at all", None])
def test_corrupt_or_truncated_files(tmp_path, content):
    path = tmp_path / "bad.npz"
    if content is None:  # a real file cut in half
        zoo.minivgg().save(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsError) as e:
        load_model(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "nope.npz")
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(WeightsError, match="not a minifer weights file"):
        load_model(tmp_path / "plain.npz")


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightsError):
        load_npz(path)


def test_mismatched_architecture(tmp_path):
    zoo.minivgg(num_classes=3).save(tmp_path / "three.npz")
    arrays, _ = load_npz(tmp_path / "three.npz")
    with pytest.raises(WeightsError, match="fc2/W"):
        zoo.minivgg().load_state_dict(arrays)
    del arrays["fc2/b"]
    with pytest.raises(WeightsError, match="missing"):
        zoo.minivgg(num_classes=3).load_state_dict(arrays)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    zoo.minivgg().save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(np, "savez", boom)
    monkeypatch.setattr(np, "savez_compressed", boom)
    for compress in (False, True):
        with pytest.raises(RuntimeError):
            zoo.minivgg(seed=5).save(path, compress=compress)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temp file left


def test_files_are_stored_unless_compressed(tmp_path):
    """Training files are written stored (fast); ``compress=True`` (files that ship) deflates them."""
    m = zoo.minivgg()
    m.save(tmp_path / "stored.npz")
    m.save(tmp_path / "deflated.npz", compress=True)
    kinds = {p: {i.compress_type for i in zipfile.ZipFile(tmp_path / p).infolist()}
             for p in ("stored.npz", "deflated.npz")}
    assert kinds == {"stored.npz": {zipfile.ZIP_STORED}, "deflated.npz": {zipfile.ZIP_DEFLATED}}
    a, b = (load_model(tmp_path / p).state_dict() for p in kinds)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_import_is_fast_and_compiles_nothing():
    code = ("import time, sys; t = time.perf_counter(); import minifer; dt = time.perf_counter() - t; "
            "print(dt, 'numba' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 0.5 and out[1] == "False" and out[2] == "False"


def test_predict_proba_and_modes():
    m = zoo.minivgg()
    p = m.predict_proba(np.zeros((5, 48, 48, 1), np.float32), batch_size=2)
    assert p.shape == (5, 7) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert all(l.training for l in m.layers)  # restored
