"""Train a tiny CNN with minifer in one screen of code and watch the loss go down.

    python examples/02_tiny_cnn.py                 # 2000 FER2013 faces, 5 epochs
    python examples/02_tiny_cnn.py --quick         # 512 faces, 4 epochs (well under a minute)
    python examples/02_tiny_cnn.py --synthetic     # drawn cartoon faces instead of FER2013

Faces come from --data (default ../shared/data/fer2013/fer2013_train_val.npz: the first images of
its train and val splits). If that file is missing, or with --synthetic, the script draws simple
cartoon faces with three expressions (happy, sad, surprise), so it runs anywhere. The network is
minifer.zoo.tiny_cnn and the training loop minifer.fit.train_epoch (forward, loss, backward,
optimizer step: one screen to read, and the last exercise of python -m minifer.exercises) instead
of minifer.train; see docs/09_training_and_curves.md.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifer import optim, zoo  # noqa: E402
from minifer.fer import augment, data  # noqa: E402
from minifer.fer.classes import CLASSES, gray_preprocess, model_input  # noqa: E402
from minifer.fit import train_epoch  # noqa: E402
from minifer.layers import SoftmaxCrossEntropy  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_val.npz"
SYNTHETIC_CLASSES = ["happy", "sad", "surprise"]


def cartoon_faces(n, rng):
    """n drawn 48x48 faces (uint8) with labels 0 happy (smile), 1 sad (frown), 2 surprise (open mouth)."""
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    y = rng.integers(0, 3, n)
    x = np.empty((n, 48, 48), np.uint8)
    for i in range(n):
        cy, cx = 24 + rng.integers(-3, 4), 24 + rng.integers(-3, 4)   # the face moves a little
        img = np.full((48, 48), 40.0, np.float32)
        img[((xx - cx) / 17) ** 2 + ((yy - cy) / 21) ** 2 < 1] = 170
        for ex in (cx - 7, cx + 7):                                   # eyes
            img[((xx - ex) / 3) ** 2 + ((yy - cy + 6) / 2) ** 2 < 1] = 30
        if y[i] == 2:                                                 # surprise: an open "O"
            img[((xx - cx) / 4) ** 2 + ((yy - cy - 9) / 5) ** 2 < 1] = 30
        else:                                                         # smile (0) or frown (1)
            bend = 3.0 if y[i] == 0 else -3.0
            mouth = cy + 8 + bend * ((xx - cx) / 8) ** 2 - bend / 2
            img[(np.abs(yy - mouth) < 1.3) & (np.abs(xx - cx) < 8)] = 30
        img += rng.normal(0, 12, img.shape)
        x[i] = np.clip(img, 0, 255).astype(np.uint8)
    return x, y


def load(args, rng):
    if not args.synthetic and Path(args.data).is_file():
        x_tr, y_tr = data.load_fer(args.data, "train")
        x_va, y_va = data.load_fer(args.data, "val")
        return (x_tr[:args.train_images], y_tr[:args.train_images], x_va[:args.val_images],
                y_va[:args.val_images], list(CLASSES), f"FER2013 ({args.data})")
    if not args.synthetic:
        print(f"{args.data} not found: using synthetic cartoon faces")
    x_tr, y_tr = cartoon_faces(args.train_images, rng)
    x_va, y_va = cartoon_faces(args.val_images, rng)
    return x_tr, y_tr, x_va, y_va, SYNTHETIC_CLASSES, "synthetic cartoon faces"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="FER2013 npz / csv / image folder")
    p.add_argument("--synthetic", action="store_true", help="use drawn cartoon faces")
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--val-images", type=int, default=500)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="512 train / 256 val images, 4 epochs")
    args = p.parse_args(argv)
    if args.quick:
        args.train_images, args.val_images, args.epochs = 512, 256, 4

    rng = np.random.default_rng(args.seed)
    x_tr, y_tr, x_va, y_va, classes, source = load(args, rng)
    mean, std = data.pixel_mean_std(x_tr)
    print(f"data: {source}: {len(x_tr)} training, {len(x_va)} validation faces, {len(classes)} classes")

    model = zoo.tiny_cnn(len(classes), seed=args.seed)    # 48x48x1 -> 3 conv blocks -> 6x6x32 -> dense
    print(model.summary())
    opt = optim.Adam(model.params(), lr=args.lr)
    loss_fn = SoftmaxCrossEntropy()
    aug = augment.make_train_augment("light")
    model.meta["preprocess"] = gray_preprocess(mean, std)      # what prediction will use
    x_val = model_input(x_va, model.meta)                        # (x / 255 - mean) / std
    print(f"chance-level loss for {len(classes)} classes: {np.log(len(classes)):.3f}")

    def transform(faces, rng):                                   # uint8 (B, 48, 48) -> model input
        xb = aug(faces[..., None].astype(np.float32) / 255, rng)   # augment in [0, 1]
        return (xb - np.float32(mean)) / np.float32(std)           # then normalise

    losses = []
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        loss, acc = train_epoch(model, loss_fn, opt, x_tr, y_tr, args.batch_size, rng, transform)
        losses.append(loss)
        val_acc = float((model.predict_proba(x_val).argmax(1) == y_va).mean())
        print(f"epoch {epoch}: mean training loss {loss:.3f}, training accuracy {acc * 100:.1f}%, "
              f"validation accuracy {val_acc * 100:.1f}% ({time.perf_counter() - t0:.1f} s)")
    print(f"mean training loss: first epoch {losses[0]:.3f} -> last epoch {losses[-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
