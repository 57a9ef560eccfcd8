"""Saliency and Grad-CAM (minifer.fer.explain): shapes, ranges, exact gradients, localisation."""
import numpy as np
import pytest

from minifer import zoo
from minifer.fer.explain import default_cam_layer, grad_cam, overlay, saliency
from minifer.gradcheck import numeric_grad, rel_error
from minifer.layers import (BatchNorm2d, Conv2d, Dense, Dropout, Flatten, GlobalAvgPool2d,
                            MaxPool2d, ReLU)
from minifer.model import Sequential


def tiny_model(rng):
    """conv -> BN -> ReLU -> pool -> flatten -> dense -> dropout -> dense, 8x8x2 in, 3 classes."""
    m = Sequential([Conv2d(2, 4, 3, padding=1, rng=rng), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                    Flatten(), Dense(4 * 4 * 4, 6, rng=rng), Dropout(0.5), Dense(6, 3, rng=rng)])
    bn = m.layers[1]                                  # non-trivial running statistics
    bn.buffers["running_mean"] = rng.standard_normal(4).astype(np.float32) * 0.1
    bn.buffers["running_var"] = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    bn.params["gamma"].data = rng.uniform(0.5, 1.5, 4).astype(np.float32)
    return m


def test_saliency_equals_numeric_gradient():
    rng = np.random.default_rng(0)
    m = tiny_model(rng)
    for p in m.params():                              # float64 for a precise comparison
        p.data = p.data.astype(np.float64)
    x = rng.standard_normal((2, 8, 8, 2))
    for target in (0, 2):
        s = saliency(m, x, target=target)
        for n in range(2):
            xn = x[n:n + 1].copy()

            def score():
                m.eval()
                return float(m.forward(xn)[0, target])
            g = numeric_grad(score, xn, h=1e-6)
            assert rel_error(s[n], np.abs(g).max(axis=-1)[0]) < 1e-6


def test_saliency_default_target_is_prediction_and_model_state_is_restored():
    rng = np.random.default_rng(1)
    m = tiny_model(rng)
    m.train()
    x = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    pred = m.predict_proba(x).argmax(1)
    m.train()
    s = saliency(m, x)
    assert s.shape == (3, 8, 8) and s.dtype == np.float32 and (s >= 0).all()
    for n in range(3):
        np.testing.assert_allclose(s[n], saliency(m, x[n:n + 1], target=int(pred[n]))[0], rtol=1e-5, atol=1e-7)
    assert all(l.training for l in m.layers) and all(l.cache is None for l in m.layers)
    assert all(p.grad is None for p in m.params())


def test_grad_cam_shapes_and_range_on_minivgg():
    m = zoo.minivgg(seed=0)
    assert default_cam_layer(m) == "b3c2_relu"
    x = np.random.default_rng(2).standard_normal((2, 48, 48, 1)).astype(np.float32)
    cam = grad_cam(m, x)
    assert cam.shape == (2, 48, 48) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() <= 1
    cam2 = grad_cam(m, x, layer_name="b2_pool", target=3)
    assert cam2.shape == (2, 48, 48) and cam2.min() >= 0 and cam2.max() <= 1


def localising_model():
    """Class 0 = mean of relu(x) (bright evidence), class 1 = mean of relu(-x) (dark evidence)."""
    conv = Conv2d(1, 2, 1, bias=False, name="conv")
    conv.params["W"].data = np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)
    head = Dense(2, 2, bias=False, name="head")
    head.params["W"].data = np.eye(2, dtype=np.float32)
    return Sequential([conv, ReLU(name="relu"), MaxPool2d(2, name="pool"),
                       GlobalAvgPool2d(name="gap"), head])


@pytest.mark.parametrize("layer", [None, "pool"])
def test_grad_cam_finds_the_region_that_matters(layer):
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.05, 0.05, (1, 16, 16, 1)).astype(np.float32)
    x[0, 2:6, 2:6] = 1.0        # bright square, top left: evidence for class 0
    x[0, 10:14, 10:14] = -1.0   # dark square, bottom right: evidence for class 1
    bright, dark = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
    bright[2:6, 2:6], dark[10:14, 10:14] = True, True
    m = localising_model()
    for target, inside, other in ((0, bright, dark), (1, dark, bright)):
        cam = grad_cam(m, x, layer_name=layer, target=target)[0]
        assert cam.shape == (16, 16)
        assert inside[np.unravel_index(cam.argmax(), cam.shape)]
        assert cam[inside].mean() > 0.6 and cam[other].max() < 0.2


def test_grad_cam_bad_layer():
    m = localising_model()
    x = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match="no layer named"):
        grad_cam(m, x, layer_name="nope")
    with pytest.raises(ValueError, match="Grad-CAM needs"):
        grad_cam(m, x, layer_name="gap")


def test_overlay():
    gray = np.tile(np.arange(48, dtype=np.uint8) * 5, (48, 1))
    heat = np.zeros((12, 12), np.float32)
    heat[:6, :6] = 1.0
    rgb = overlay(gray, heat)
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(overlay(gray, np.zeros((48, 48)), alpha=0.0)[..., 1], gray)
    hot, cold = rgb[5, 5].astype(int), rgb[40, 40].astype(int)
    assert hot[0] > hot[2] and cold[2] > cold[0]   # jet: red where hot, blue where cold
