"""Every layer's hand-written backward pass against float64 central differences."""
import numpy as np
import pytest

from minifer import zoo
from minifer.gradcheck import check_layer, check_model, numeric_grad, rel_error
from minifer.layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dense, Dropout, Flatten,
                            GlobalAvgPool2d, MaxPool2d, ReLU, SoftmaxCrossEntropy)
from minifer.model import Sequential

TOL = 1e-6
rng = np.random.default_rng(0)


def x_(*shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("k,stride,pad,bias", [(3, 1, 1, True), (3, 2, 0, False), (1, 1, 0, True), (5, 2, 2, True)])
def test_conv2d(k, stride, pad, bias):
    layer = Conv2d(3, 4, k, stride=stride, padding=pad, bias=bias, rng=rng)
    errs = check_layer(layer, x_(2, 7, 6, 3))
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("chunk_bytes", [1, 13000])
def test_conv2d_in_batch_chunks(monkeypatch, chunk_bytes):
    """Chunks of 1 or 2 images (and a last, shorter chunk) give the whole-batch
    result, and their gradients pass the numeric check."""
    from minifer import ops
    layer = Conv2d(3, 4, 3, stride=1, padding=1, rng=rng)
    x = x_(5, 6, 5, 3)
    g = x_(5, 6, 5, 4)
    whole = [layer.forward(x), layer.backward(g), layer.params["W"].grad.copy()]
    monkeypatch.setattr(ops, "CHUNK_BYTES", chunk_bytes)
    assert len(ops.batch_chunks(5, 30 * 27 * 8)) == (5 if chunk_bytes == 1 else 3)
    chunked = [layer.forward(x), layer.backward(g), layer.params["W"].grad]
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert max(check_layer(layer, x).values()) < TOL


@pytest.mark.parametrize("pad", [0, 1, 2])
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 19])
def test_conv2d_winograd_path(monkeypatch, pad, chunk_bytes):
    """3x3 stride-1 convs with >= 8 input channels run as Winograd F(2x2, 3x3): the same
    output and gradients as im2col (float32, odd sizes, image-by-image chunks or not), and
    their float64 gradients pass the numeric check."""
    from minifer import ops
    monkeypatch.setattr(ops, "WINOGRAD_CHUNK_BYTES", chunk_bytes)
    layer = Conv2d(8, 5, 3, stride=1, padding=pad, rng=rng)
    layer.params["b"].data = rng.standard_normal(5).astype(np.float32)
    assert ops.winograd_applies(layer.params["W"].data.shape, 1, pad)
    x = rng.standard_normal((3, 7, 6, 8)).astype(np.float32)
    g = rng.standard_normal((3, *layer.output_shape(x.shape[1:]))).astype(np.float32)
    runs = []
    for min_channels in (8, 1 << 30):                      # Winograd, then im2col
        monkeypatch.setattr(ops, "WINOGRAD_MIN_CHANNELS", min_channels)
        out = layer.forward(x)
        runs.append([out, layer.backward(g), layer.params["W"].grad, layer.params["b"].grad])
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    monkeypatch.setattr(ops, "WINOGRAD_MIN_CHANNELS", 8)
    errs = check_layer(layer, x_(2, 5, 6, 8))
    assert max(errs.values()) < TOL, errs


def test_conv2d_keeps_winograd_filters_only_in_eval_mode():
    """Evaluation reuses the transformed filters while W is the same array, and recomputes
    them when W is replaced (as loading does); training never keeps them."""
    layer = Conv2d(8, 4, 3, padding=1, rng=rng)
    x = rng.standard_normal((2, 6, 6, 8)).astype(np.float32)
    train_out = layer.forward(x)
    assert layer._u is None
    layer.training = False
    np.testing.assert_array_equal(layer.forward(x), train_out)
    u = layer._u[2]
    layer.forward(x)
    assert layer._u[2] is u
    layer.params["W"].data = layer.params["W"].data * 2
    np.testing.assert_allclose(layer.forward(x), 2 * train_out, rtol=1e-5, atol=1e-5)
    # a training step in between (the optimizer updates W in place): evaluation sees the new W
    from minifer import optim
    layer.training = True
    layer.backward(np.ones_like(layer.forward(x)))
    w_before = layer.params["W"].data.copy()
    optim.SGD(list(layer.params.values()), lr=0.1).step()
    assert not np.array_equal(layer.params["W"].data, w_before)
    want = layer.forward(x)
    layer.training = False
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-5, atol=1e-5)


def test_conv2d_matches_direct_convolution():
    """The im2col result equals the textbook sum over kernel taps."""
    layer = Conv2d(2, 3, 3, stride=1, padding=1, rng=rng)
    layer.params["b"].data = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    out = layer.forward(x)
    w, b = layer.params["W"].data, layer.params["b"].data
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 5, 5, 3), np.float32)
    for i in range(5):
        for j in range(5):
            ref[:, i, j, :] = np.einsum("nhwc,hwcf->nf", xp[:, i:i + 3, j:j + 3, :], w) + b
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,k,s", [(MaxPool2d, 2, 2), (MaxPool2d, 3, 2), (AvgPool2d, 2, 2), (AvgPool2d, 3, 1)])
def test_pooling(cls, k, s):
    errs = check_layer(cls(k, s), x_(2, 6, 7, 3))
    assert max(errs.values()) < TOL, errs


def test_global_avg_pool():
    assert max(check_layer(GlobalAvgPool2d(), x_(2, 4, 3, 5)).values()) < TOL


def test_batchnorm2d_train():
    layer = BatchNorm2d(3)
    layer.params["gamma"].data = rng.standard_normal(3).astype(np.float32)
    layer.params["beta"].data = rng.standard_normal(3).astype(np.float32)
    errs = check_layer(layer, x_(4, 3, 3, 3) * 2 + 1)
    assert max(errs.values()) < 1e-5, errs


def test_batchnorm1d_train_and_eval():
    layer = BatchNorm1d(5)
    errs = check_layer(layer, x_(16, 5))
    assert max(errs.values()) < 1e-5, errs
    layer.training = False
    assert max(check_layer(layer, x_(8, 5)).values()) < TOL


def test_batchnorm_running_stats():
    layer = BatchNorm2d(2, momentum=0.5)
    x = (rng.standard_normal((16, 4, 4, 2)) * 3 + 2).astype(np.float32)
    out = layer.forward(x)
    np.testing.assert_allclose(out.reshape(-1, 2).mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(-1, 2).std(0), 1, atol=1e-3)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.5 * x.reshape(-1, 2).mean(0), rtol=1e-5)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.5 + 0.5 * x.reshape(-1, 2).var(0, ddof=1), rtol=1e-4)


def test_dense_relu_flatten_dropout():
    assert max(check_layer(Dense(6, 4, rng=rng), x_(3, 6)).values()) < TOL
    assert max(check_layer(ReLU(), x_(3, 6)).values()) < TOL
    assert max(check_layer(Flatten(), x_(2, 3, 2, 2)).values()) < TOL
    assert max(check_layer(Dropout(0.3), x_(4, 8)).values()) < TOL


def test_dropout_statistics_and_eval_identity():
    d = Dropout(0.5)
    d.rng = np.random.default_rng(0)
    x = np.ones((1000, 100), np.float32)
    out = d.forward(x)
    assert abs((out == 0).mean() - 0.5) < 0.01 and abs(out.mean() - 1) < 0.02
    d.training = False
    assert d.forward(x) is x


@pytest.mark.parametrize("smoothing,weights,soft", [(0.0, None, False), (0.1, None, False),
                                                    (0.0, [1, 2, 0.5, 1], False), (0.1, [1, 2, 0.5, 1], True)])
def test_softmax_cross_entropy(smoothing, weights, soft):
    z = x_(5, 4)
    y = rng.random((5, 4)) if soft else rng.integers(0, 4, 5)
    if soft:
        y /= y.sum(1, keepdims=True)
    f = SoftmaxCrossEntropy(smoothing, weights)
    f(z, y)
    g = f.backward()
    num = numeric_grad(lambda: f(z, y), z)
    assert rel_error(g, num) < TOL


@pytest.mark.parametrize("temperature,weight,smoothing", [(4.0, 0.7, 0.0), (3.0, 0.5, 0.1), (1.0, 1.0, 0.0)])
def test_distillation_loss_gradient_against_soft_targets(temperature, weight, smoothing):
    from minifer.layers import DistillationLoss, soften
    z, y = x_(6, 7), rng.integers(0, 7, 6)
    teacher = rng.random((6, 7))
    teacher /= teacher.sum(1, keepdims=True)
    f = DistillationLoss(temperature, weight, smoothing)
    f(z, y, teacher)
    g = f.backward()
    assert rel_error(g, numeric_grad(lambda: f(z, y, teacher), z)) < TOL
    # the soft part alone is T^2 * cross-entropy against the softened teacher
    pt = soften(teacher, temperature)
    want = -(pt * np.log(soften(np.exp(z - z.max(1, keepdims=True)), temperature))).sum(1).mean()
    assert DistillationLoss(temperature, 1.0)(z, y, teacher) == pytest.approx(temperature ** 2 * want, rel=1e-8)


def test_cross_entropy_value_and_stability():
    f = SoftmaxCrossEntropy()
    z = np.array([[1000.0, 0.0, -1000.0]], np.float32)
    assert f(z, np.array([0])) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(f(z, np.array([2])))
    z = np.zeros((2, 4), np.float32)
    assert f(z, np.array([0, 3])) == pytest.approx(np.log(4), rel=1e-6)


def test_small_network_gradients():
    # no bias right before batch-norm: its true gradient is exactly 0 (BN removes any shift)
    model = Sequential([Conv2d(1, 3, 3, padding=1, bias=False, rng=rng), BatchNorm2d(3), ReLU(), MaxPool2d(2),
                        Conv2d(3, 4, 3, padding=1, rng=rng), ReLU(), AvgPool2d(2), Flatten(),
                        Dense(16, 5, bias=False, rng=rng), BatchNorm1d(5), ReLU(), Dropout(0.2),
                        Dense(5, 3, rng=rng)])
    errs = check_model(model, x_(4, 8, 8, 1), rng.integers(0, 3, 4), SoftmaxCrossEntropy(0.1), max_checks=6)
    assert max(errs.values()) < 1e-5, errs


def test_minivgg_shapes_params_flops():
    m = zoo.minivgg()
    out = m.forward(np.zeros((2, 48, 48, 1), np.float32))
    assert out.shape == (2, 7) and out.dtype == np.float32
    assert m.num_params() == 1_468_839
    assert 170e6 < m.flops() < 180e6
    s = m.summary()
    assert "b1c1_conv" in s and "(6, 6, 128)" in s and "1,468,839" in s
    wide = zoo.build("minivgg_wide")
    assert wide.name == "minivgg_wide" and wide.num_params() == 1_924_751 and 265e6 < wide.flops() < 275e6
    assert wide.forward(np.zeros((1, 48, 48, 1), np.float32)).shape == (1, 7)


def test_float32_throughout():
    m = zoo.minivgg()
    x = np.random.default_rng(0).standard_normal((2, 48, 48, 1)).astype(np.float32)
    z = m.forward(x)
    loss = SoftmaxCrossEntropy()
    loss(z, np.array([0, 1]))
    m.backward(loss.backward())
    for name, p in m.named_params():
        assert p.data.dtype == np.float32 and p.grad.dtype == np.float32, name


def test_batchnorm_eval_mode_backward():
    """Eval-mode batch-norm is an affine map; its backward (used by saliency maps) is checked too."""
    layer = BatchNorm2d(3)
    layer.buffers["running_mean"] = rng.standard_normal(3).astype(np.float32)
    layer.buffers["running_var"] = (rng.random(3) + 0.5).astype(np.float32)
    layer.training = False
    errs = check_layer(layer, x_(2, 3, 3, 3))
    assert max(errs.values()) < TOL, errs


def _fused_layers():
    """Every layer that can take the ReLU after it (im2col and Winograd convolutions, dense,
    batch-norm in training and evaluation), with float64 inputs."""
    bn_eval = BatchNorm2d(8)
    bn_eval.buffers["running_mean"] = rng.standard_normal(8)
    bn_eval.buffers["running_var"] = rng.random(8) + 0.5
    bn_eval.training = False
    bn_train = BatchNorm1d(5)
    bn_train.params["beta"].data = rng.standard_normal(5).astype(np.float32)
    return [(Conv2d(3, 4, 3, padding=1, rng=rng), x_(2, 5, 6, 3)),
            (Conv2d(8, 5, 3, padding=1, rng=rng), x_(2, 5, 6, 8)),       # Winograd
            (Dense(6, 4, rng=rng), x_(3, 6)),
            (bn_train, x_(8, 5)),
            (bn_eval, x_(2, 3, 3, 8))]


@pytest.mark.parametrize("i", range(5))
def test_fused_relu_gradients(i):
    """``forward(x, relu=True)``: the layer's output through a ReLU, and its backward pass
    passes the numeric check (the gradient is 0 where the ReLU was off)."""
    layer, x = _fused_layers()[i]
    if "b" in layer.params:
        layer.params["b"].data = rng.standard_normal(layer.params["b"].data.shape)
    out = layer.forward(x.astype(np.float32), relu=True)
    layer.cache = None
    assert out.min() == 0 and (out > 0).any()
    errs = check_layer(layer, x, relu=True)
    assert max(errs.values()) < TOL, errs


@pytest.mark.parametrize("training", [True, False])
def test_sequential_fuses_relu_to_the_same_result(training):
    """``Sequential`` runs each ReLU inside the layer before it where it can (and in evaluation mode
    each batch-norm folded into the convolution before it): the outputs and every gradient are
    those of running the layers one by one (float32, bit for bit or to rounding)."""
    def net():
        r = np.random.default_rng(3)
        return Sequential([Conv2d(1, 8, 3, padding=1, rng=r), ReLU(),                  # conv + bias + ReLU
                           Conv2d(8, 8, 3, padding=1, bias=False, rng=r), BatchNorm2d(8), ReLU(),  # Winograd, BN
                           MaxPool2d(2), ReLU(), Flatten(), Dense(128, 6, rng=r), ReLU(),  # a ReLU not fused
                           Dense(6, 3, rng=r)])
    fused, plain = net(), net()
    assert [i for i, relu in fused._steps() if relu] == [0, 3, 8]
    x = rng.standard_normal((4, 8, 8, 1)).astype(np.float32)
    y = np.array([0, 1, 2, 1])
    grads = []
    for model, run in ((fused, lambda z: fused.forward(z)), (plain, None)):
        model.train(training)
        z = x
        if run:
            z = run(z)
        else:
            for layer in model.layers:
                z = layer.forward(z)
        loss = SoftmaxCrossEntropy()
        loss(z, y)
        d = loss.backward()
        if run:
            dx = model.backward(d, input_grad=True)
        else:
            for layer in reversed(model.layers):
                d = layer.backward(d)
            dx = d
        grads.append([z, dx] + [p.grad for p in model.params()])
    (z_fused, *rest_fused), (z_plain, *rest_plain) = grads
    # in evaluation mode the batch-norm is folded into the convolution before it: float32 rounding
    np.testing.assert_allclose(z_fused, z_plain, rtol=1e-6 if training else 1e-5,
                               atol=1e-7 if training else 2e-6 * np.abs(z_plain).max())
    for a, b in zip(rest_fused, rest_plain):     # backward runs the layers' own forward again first
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.abs(b).max())
