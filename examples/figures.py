"""Draw the tutorial's pictures into docs/img/.

    python examples/figures.py --im2col      # docs/img/im2col.png (needs nothing)
    python examples/figures.py --filters     # docs/img/filters.png: first-layer filters (trained weights)
    python examples/figures.py --gradcam     # docs/img/gradcam.png: Grad-CAM + saliency on sample faces
    python examples/figures.py --all         # all three
    python examples/figures.py --quick --out-dir /tmp/figs   # the im2col figure only (used by the tests)

The trained-weights figures read ``--weights`` (default: the weights shipped in the package) and the faces of
``--data`` (default ``../shared/data/fer2013/fer2013_train_val.npz``, validation split, the first face
of every class). When the weights are missing the script says so and skips those figures.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from minifer.ops import reference  # noqa: E402
from minifer.fer.predictor import default_weights  # noqa: E402

DEFAULT_WEIGHTS = default_weights()
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_train_val.npz"
WINDOW_COLORS = ["#e63946", "#2a9d8f", "#f4a261", "#457b9d"]


def _grid(ax, values, colors=None, fmt="{:g}", title=""):
    """Draw a 2-D array as a table of numbered cells; ``colors[i][j]`` fills a cell."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            fc = colors[i][j] if colors is not None else "white"
            ax.add_patch(Rectangle((j, rows - 1 - i), 1, 1, facecolor=fc, edgecolor="black", lw=0.8))
            ax.text(j + 0.5, rows - 0.5 - i, fmt.format(values[i, j]), ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.1, cols + 0.1)
    ax.set_ylim(-0.1, rows + 0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def im2col_figure(path):
    """A 4x4 one-channel input, a 3x3 kernel (stride 1, no padding): the four windows become the
    four rows of cols (4 x 9); cols @ W.reshape(9, 1) is the 2x2 output."""
    x = np.array([[3, 1, 0, 2], [1, 4, 2, 0], [0, 2, 5, 1], [2, 0, 1, 3]], np.float32).reshape(1, 4, 4, 1)
    w = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32)        # a vertical-edge kernel
    cols = reference.im2col(x, 3, 3)                                      # (4, 9)
    out = cols @ w.reshape(9, 1)                                          # (4, 1)
    fig = plt.figure(figsize=(12, 3.6))
    gs = fig.add_gridspec(1, 5, width_ratios=[4.2, 9.5, 1.3, 1.4, 2.4], wspace=0.35)
    ax = fig.add_subplot(gs[0])
    _grid(ax, x[0, :, :, 0], title="input x (N=1, H=W=4, C=1)")
    for r, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):         # the 4 kernel windows
        inset = 0.06 + 0.07 * r
        ax.add_patch(Rectangle((j + inset, 4 - 3 - i + inset), 3 - 2 * inset, 3 - 2 * inset, fill=False,
                               edgecolor=WINDOW_COLORS[r], lw=2.2))
    ax = fig.add_subplot(gs[1])
    tint = [[WINDOW_COLORS[r] + "40"] * 9 for r in range(4)]
    _grid(ax, cols, colors=tint, title="cols = im2col(x): one row per output pixel (4 x 9)")
    for j in range(9):
        ax.text(j + 0.5, -0.35, f"({j // 3},{j % 3})", ha="center", va="top", fontsize=7, color="0.35")
    ax.set_ylim(-0.9, 4.1)
    ax = fig.add_subplot(gs[2])
    _grid(ax, w.reshape(9, 1), title="W (9 x 1)")
    ax = fig.add_subplot(gs[3])
    _grid(ax, out, colors=[[WINDOW_COLORS[r] + "40"] for r in range(4)], title="cols @ W")
    ax = fig.add_subplot(gs[4])
    _grid(ax, out.reshape(2, 2), colors=[[WINDOW_COLORS[0] + "40", WINDOW_COLORS[1] + "40"],
                                         [WINDOW_COLORS[2] + "40", WINDOW_COLORS[3] + "40"]],
          title="reshape: out (1, 2, 2, 1)")
    fig.suptitle("Convolution as im2col + one matrix multiply (kernel tap (kh, kw) under each column)", y=1.04,
                 fontsize=11)
    _save(fig, path)


def filters_figure(model, path):
    """The first conv layer's kernels, one tile each, gray scale symmetric around 0."""
    conv = next(l for l in model.layers if type(l).__name__ == "Conv2d")
    w = np.asarray(conv.params["W"].data, np.float32)           # (KH, KW, C, F)
    w = w.mean(axis=2)                                           # colour -> one tile per filter
    f = w.shape[-1]
    ncol = 8
    nrow = -(-f // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.9, nrow * 0.9 + 0.5))
    for k, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if k < f:
            m = np.abs(w[..., k]).max() or 1.0
            ax.imshow(w[..., k], cmap="gray", vmin=-m, vmax=m, interpolation="nearest")
    fig.suptitle(f"{conv.name}: {f} learned {w.shape[0]}x{w.shape[1]} filters (white +, black -)", fontsize=10)
    _save(fig, path)


def sample_faces(data_path):
    """The first validation face of every class -> (uint8 (K, 48, 48), labels)."""
    from minifer.fer.data import load_fer
    x, y = load_fer(data_path, "val")
    idx = [int(np.flatnonzero(y == c)[0]) for c in range(7) if (y == c).any()]
    return x[idx], y[idx]


def gradcam_figure(model, faces, labels, path):
    """Rows: the face, Grad-CAM of the predicted class over it, input-gradient saliency."""
    from minifer.fer.classes import model_input
    from minifer.fer.explain import grad_cam, overlay, saliency
    classes = model.meta["classes"]
    x = model_input(faces, model.meta)                       # the model's own preprocessing
    probs = model.predict_proba(x)
    pred = probs.argmax(1)
    cam = grad_cam(model, x, target=pred)
    sal = saliency(model, x, target=pred)
    n = len(faces)
    fig, axes = plt.subplots(3, n, figsize=(1.7 * n, 5.6))
    for k in range(n):
        axes[0, k].imshow(faces[k], cmap="gray", vmin=0, vmax=255)
        axes[0, k].set_title(f"true {classes[labels[k]]}\npred {classes[pred[k]]} {probs[k, pred[k]]:.2f}",
                             fontsize=8)
        axes[1, k].imshow(overlay(faces[k], cam[k]))
        axes[2, k].imshow(sal[k], cmap="magma")
        for a in axes[:, k]:
            a.axis("off")
    axes[1, 0].text(-6, 24, "Grad-CAM", rotation=90, va="center", ha="right", fontsize=9)
    axes[2, 0].text(-6, 24, "saliency", rotation=90, va="center", ha="right", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--im2col", action="store_true", help="the im2col lowering figure")
    p.add_argument("--filters", action="store_true", help="first-layer filters of the trained model")
    p.add_argument("--gradcam", action="store_true", help="Grad-CAM and saliency on sample faces")
    p.add_argument("--all", action="store_true", help="all figures")
    p.add_argument("--quick", action="store_true", help="only the im2col figure (fast; for tests)")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out-dir", default=str(ROOT / "docs" / "img"))
    args = p.parse_args(argv)
    out = Path(args.out_dir)
    want_im2col = args.im2col or args.all or args.quick or not (args.filters or args.gradcam)
    if want_im2col:
        im2col_figure(out / "im2col.png")
    if args.quick or not (args.filters or args.gradcam or args.all):
        return 0
    if not Path(args.weights).is_file():
        print(f"no trained weights at {args.weights}: train first (examples/05_train_fer.py) "
              f"or pass --weights; skipping --filters/--gradcam")
        return 1
    from minifer.model import load_model
    model = load_model(args.weights)
    if args.filters or args.all:
        filters_figure(model, out / "filters.png")
    if args.gradcam or args.all:
        faces, labels = sample_faces(args.data)
        gradcam_figure(model, faces, labels, out / "gradcam.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
