"""Model zoo: ``minivgg`` (the project's reference network), VGG16 and a tiny CNN to learn with.

minivgg, for 48x48x1 faces (padding 1 everywhere)::

    [conv3x3 32, BN, ReLU] x2, maxpool2      48 -> 24
    [conv3x3 64, BN, ReLU] x2, maxpool2      24 -> 12
    [conv3x3 128, BN, ReLU] x2, maxpool2     12 -> 6
    flatten (6*6*128 = 4608), dense 256, BN1d, ReLU, dropout 0.5, dense 7

Convolutions followed by batch-norm have no bias: BN's beta already shifts
each channel, so a conv bias would be a redundant parameter.
"""
import numpy as np

from .layers import (BatchNorm1d, BatchNorm2d, Conv2d, Dense, Dropout, Flatten,
                     GlobalAvgPool2d, MaxPool2d, ReLU)
from .model import Sequential



def _meta(input_size, in_channels, num_classes, classes):
    """Input shape and class names; names default to "0".."K-1" (the application sets its own)."""
    classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(num_classes)]
    if len(classes) != num_classes:
        raise ValueError(f"{len(classes)} class names for {num_classes} classes")
    return {"input_shape": [input_size, input_size, in_channels], "classes": classes}


def _conv_bn_relu(cin, cout, name, rng):
    return [Conv2d(cin, cout, 3, padding=1, bias=False, name=f"{name}_conv", rng=rng),
            BatchNorm2d(cout, name=f"{name}_bn"), ReLU(name=f"{name}_relu")]


def minivgg(num_classes=7, in_channels=1, input_size=48, widths=(32, 64, 128), hidden=256,
            dropout=0.5, seed=0, classes=None):
    """The reference network (see the module docstring); ``classes`` names the outputs."""
    rng = np.random.default_rng(seed)
    layers, cin = [], in_channels
    for b, w in enumerate(widths, 1):
        layers += _conv_bn_relu(cin, w, f"b{b}c1", rng) + _conv_bn_relu(w, w, f"b{b}c2", rng)
        layers.append(MaxPool2d(2, name=f"b{b}_pool"))
        cin = w
    side = input_size // 2 ** len(widths)
    layers += [Flatten(name="flatten"),
               Dense(side * side * cin, hidden, bias=False, name="fc1", rng=rng),
               BatchNorm1d(hidden, name="fc1_bn"), ReLU(name="fc1_relu"),
               Dropout(dropout, name="drop"),
               Dense(hidden, num_classes, name="fc2", rng=rng)]
    model = Sequential(layers, name="minivgg")
    model.meta = _meta(input_size, in_channels, num_classes, classes)
    return model


def minivgg_wide(**kw):
    """``minivgg`` with widths (40, 80, 160): 0.27 GFLOP per face, 1.55x the FLOPs and about 1.45x
    the batch-1 latency of ``minivgg`` (3.5 vs 2.4 ms on the project's 2-core CPU)."""
    model = minivgg(widths=(40, 80, 160), **kw)
    model.name = "minivgg_wide"
    return model


def tiny_cnn(num_classes=3, in_channels=1, input_size=48, widths=(8, 16, 32), seed=0, classes=None):
    """A network to learn with (``examples/02_tiny_cnn.py``, the classroom's exercises): per width
    a conv3x3 (no bias), BN, ReLU and maxpool2 block, then one dense layer whose weights start 10x
    smaller than He's, so the first loss is near log(K)."""
    rng = np.random.default_rng(seed)
    layers, cin = [], in_channels
    for b, w in enumerate(widths, 1):
        layers += _conv_bn_relu(cin, w, f"b{b}", rng) + [MaxPool2d(2, name=f"b{b}_pool")]
        cin = w
    side = input_size // 2 ** len(widths)
    head = Dense(side * side * cin, num_classes, name="fc", rng=rng)
    head.params["W"].data *= 0.1
    model = Sequential(layers + [Flatten(name="flatten"), head], name="tiny_cnn")
    model.meta = _meta(input_size, in_channels, num_classes, classes)
    return model


VGG16_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


def vgg16_base(in_channels=3, blocks=5, batch_norm=False, seed=0):
    """The VGG16 convolutional base (names ``block{b}_conv{i}`` as in Keras)."""
    rng = np.random.default_rng(seed)
    layers, cin = [], in_channels
    for b, (w, n) in enumerate(VGG16_BLOCKS[:blocks], 1):
        for i in range(1, n + 1):
            layers.append(Conv2d(cin, w, 3, padding=1, bias=True, name=f"block{b}_conv{i}", rng=rng))
            if batch_norm:
                layers.append(BatchNorm2d(w, name=f"block{b}_bn{i}"))
            layers.append(ReLU(name=f"block{b}_relu{i}"))
            cin = w
        layers.append(MaxPool2d(2, name=f"block{b}_pool"))
    return layers, cin


def vgg16(num_classes=7, in_channels=1, input_size=48, blocks=4, hidden=256, dropout=0.5, seed=0,
          classes=None):
    """VGG16 conv base (first ``blocks`` blocks) + a new head: GAP, dense, BN, ReLU, dropout, dense.

    For 48x48 faces, four blocks take 48 -> 3 (512 channels). The first conv can be
    one gray channel (weights summed over RGB when loading converted weights).
    """
    rng = np.random.default_rng(seed + 1)
    layers, cin = vgg16_base(in_channels, blocks, seed=seed)
    layers += [GlobalAvgPool2d(name="gap"), Dense(cin, hidden, bias=False, name="fc1", rng=rng),
               BatchNorm1d(hidden, name="fc1_bn"), ReLU(name="fc1_relu"), Dropout(dropout, name="drop"),
               Dense(hidden, num_classes, name="fc2", rng=rng)]
    model = Sequential(layers, name="vgg16")
    model.meta = _meta(input_size, in_channels, num_classes, classes)
    return model


MODELS = {"minivgg": minivgg, "minivgg_wide": minivgg_wide, "vgg16": vgg16}


def build(name, **kw):
    """Build a zoo model by name (``MODELS``); keyword arguments go to its builder."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name](**kw)
