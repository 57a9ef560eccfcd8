"""Show every augmentation of minifer.fer.augment on a few FER faces, one row each.

    python examples/03_augmentation_grid.py                 # -> docs/img/augmentation_grid.png
    python examples/03_augmentation_grid.py --quick --out /tmp/grid.png

Faces come from ``--data`` (a FER2013 csv, image folder or npz; by default
``../shared/data/fer2013/fer2013_train_val.npz`` next to the repository, its
validation split, one face per class). Without it the script draws simple
synthetic faces with numpy, so it always runs.
"""
import argparse
import functools
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifer.fer import augment as A  # noqa: E402
from minifer.fer import tta  # noqa: E402
from minifer.fer.classes import CLASSES  # noqa: E402
from minifer.fer.data import DataError, load_fer  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_val.npz"
DEFAULT_OUT = ROOT / "docs" / "img" / "augmentation_grid.png"


def synthetic_faces(n, rng):
    """``n`` cartoon faces, uint8 ``(n, 48, 48)``: head ellipse, eyes, brows, mouth."""
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    faces = []
    for i in range(n):
        smile = rng.uniform(-1.0, 1.0)
        img = np.full((48, 48), 40.0, np.float32)
        head = ((xx - 24) / 17) ** 2 + ((yy - 25) / 21) ** 2 < 1
        img[head] = 150 + 30 * (1 - ((yy[head] - 25) / 21) ** 2)
        for ex in (17, 31):
            eye = ((xx - ex) / 3.2) ** 2 + ((yy - 19) / (1.5 + rng.uniform(0, 1.5))) ** 2 < 1
            img[eye] = 30
            brow = (np.abs(yy - (14 - 2 * smile * (ex - 24) / 7)) < 1) & (np.abs(xx - ex) < 4)
            img[brow] = 60
        mouth_y = 34 - smile * ((xx - 24) / 8) ** 2 * 3
        mouth = (np.abs(yy - mouth_y) < 1.2) & (np.abs(xx - 24) < 8)
        img[mouth] = 50
        img += rng.normal(0, 6, img.shape)
        faces.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(faces), np.arange(n) % len(CLASSES)


def pick_faces(path, n, rng):
    """One face per class (up to ``n``) from ``path``, or synthetic faces."""
    try:
        x, y = load_fer(path, split="val" if str(path).endswith(".npz") else None)
    except DataError as e:
        print(f"note: {e}; using synthetic faces", file=sys.stderr)
        return synthetic_faces(n, rng)
    idx = [int(np.flatnonzero(y == c)[0]) for c in range(len(CLASSES)) if np.any(y == c)][:n]
    return x[idx], y[idx]


def rows_of_transforms(x, y_onehot, seed):
    """``[(row title, batch)]``: every transform applied to batch ``x``."""
    P = functools.partial
    rng = np.random.default_rng(seed)
    random_rows = [
        ("random_crop\npad 4 reflect", P(A.random_crop, padding=4)),
        ("random_resized\ncrop 0.6-1", P(A.random_resized_crop, scale=(0.6, 1.0))),
        ("random_affine\n±10° ±10% 0.9-1.1", A.random_affine),
        ("affine 25°\nconstant border", P(A.random_affine, degrees=25, border="constant")),
        ("brightness /\ncontrast ±0.3",
         P(A.random_brightness_contrast, brightness=0.3, contrast=0.3)),
        ("gamma\n0.6-1.6", P(A.random_gamma, gamma=(0.6, 1.6))),
        ("random_erasing\np=1", P(A.random_erasing, p=1.0, value="mean")),
        ("preset\n'standard'", A.make_train_augment("standard")),
        ("preset\n'strong'", A.make_train_augment("strong")),
    ]
    rows = [("original", x), ("hflip", A.hflip(x))]
    rows += [(title, f(x, rng)) for title, f in random_rows]
    xm, ym = A.mixup(x, y_onehot, rng, alpha=1.0)
    rows.append((f"mixup\nlam≈{ym.max(1).mean():.2f}", xm))
    xc, _ = A.cutmix(x, y_onehot, rng, alpha=1.0)
    rows.append(("cutmix", xc))
    ten = tta.tta_views(x, "tencrop", crop=40)
    rows.append(("TTA tencrop\n(top-left)", ten[0]))
    rows.append(("TTA tencrop\n(centre, flip)", ten[9]))
    return rows


def draw(rows, labels, out, dpi):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nr, nc = len(rows), rows[0][1].shape[0]
    fig, axes = plt.subplots(nr, nc, figsize=(1.1 * nc + 1.6, 1.1 * nr), squeeze=False)
    for r, (title, batch) in enumerate(rows):
        for c in range(nc):
            ax = axes[r, c]
            ax.imshow(batch[c, :, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(labels[c], fontsize=8)
        axes[r, 0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle("minifer.fer.augment on FER faces (one row per transform)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA),
                    help="FER2013 csv / image folder / npz (default: %(default)s)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="PNG to write (default: %(default)s)")
    ap.add_argument("--faces", type=int, default=7, help="faces per row (default: 7)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="4 faces, low resolution")
    args = ap.parse_args(argv)

    n = 4 if args.quick else args.faces
    rng = np.random.default_rng(args.seed)
    faces, labels = pick_faces(args.data, n, rng)
    x = faces[..., None].astype(np.float32) / 255.0          # (N, 48, 48, 1) in [0, 1]
    y = A.one_hot(labels, len(CLASSES))
    rows = rows_of_transforms(x, y, args.seed)
    draw(rows, [CLASSES[i] for i in labels], args.out, dpi=60 if args.quick else 110)
    print(f"wrote {args.out} ({len(rows)} rows x {len(x)} faces)")


if __name__ == "__main__":
    main()
