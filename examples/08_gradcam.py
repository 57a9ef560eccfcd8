"""Explain a prediction: Grad-CAM and saliency maps for the face in a photo, saved as a PNG.

    python examples/08_gradcam.py                                  # examples/images/astronaut.jpg
    python examples/08_gradcam.py photo.jpg --target happy --out why_happy.png
    python examples/08_gradcam.py --quick                          # runs even without trained weights

The largest face is found and cut out as for python -m minifer.predict, classified, and explained
with minifer.fer.explain (docs/10_evaluation.md): Grad-CAM shows which regions of the last conv layer's
feature maps raised the class score, saliency which input pixels it is most sensitive to. The PNG
shows the photo, the 48x48 face, both maps and the class probabilities. Needs trained weights
(--weights, default: the weights shipped in the package); with --quick and no weights it explains an untrained
model instead (the pipeline runs, the maps mean nothing).
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from minifer import zoo  # noqa: E402
from minifer.fer.classes import CLASSES, gray_preprocess  # noqa: E402
from minifer.fer.explain import default_cam_layer, grad_cam, overlay, saliency  # noqa: E402
from minifer.fer.faces import FaceFinder  # noqa: E402
from minifer.fer.images import load_image, to_gray_array  # noqa: E402
from minifer.fer.predictor import Predictor, PredictorError, default_weights  # noqa: E402

DEFAULT_WEIGHTS = default_weights()
DEFAULT_IMAGE = ROOT / "examples" / "images" / "astronaut.jpg"


def load_predictor(weights, quick):
    """``(Predictor, trained)``: the weights file's model, or with ``quick`` and no file an untrained one."""
    if Path(weights).is_file():
        return Predictor.load(weights), True
    if not quick:
        raise PredictorError(f"no trained weights at {weights}: train first (python examples/05_train_fer.py "
                         f"--install) or pass --weights FILE")
    print(f"no trained weights at {weights}: explaining an UNTRAINED minivgg (--quick demo only)")
    model = zoo.minivgg(classes=CLASSES)
    model.meta["preprocess"] = gray_preprocess(0.5, 0.25)
    return Predictor(model.eval()), False


def figure(gray, box, face, probs, classes, cam, sal, target, layer, path, trained):
    fig, ax = plt.subplots(1, 5, figsize=(16, 3.6), gridspec_kw={"width_ratios": [1.3, 1, 1, 1, 1.4]})
    ax[0].imshow(gray, cmap="gray")
    x, y, w, h = box
    ax[0].add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="#ffbe0b", lw=2))
    ax[0].set_title("photo and detected face")
    ax[1].imshow(face, cmap="gray", vmin=0, vmax=255)
    ax[1].set_title("48x48 model input")
    ax[2].imshow(overlay(face, cam))
    ax[2].set_title(f"Grad-CAM ({layer})\nfor '{classes[target]}'")
    ax[3].imshow(sal, cmap="magma")
    ax[3].set_title(f"saliency |d score / d pixel|\nfor '{classes[target]}'")
    for a in ax[:4]:
        a.axis("off")
    order = np.arange(len(classes))
    ax[4].barh(order, probs, color=["#e63946" if i == target else "#8d99ae" for i in order])
    ax[4].set_yticks(order, classes)
    ax[4].invert_yaxis()
    ax[4].set_xlim(0, 1)
    ax[4].set_title("probabilities" + ("" if trained else " (UNTRAINED model)"))
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("image", nargs="?", default=str(DEFAULT_IMAGE))
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--target", help="class to explain, name or index (default: the predicted class)")
    p.add_argument("--layer", help="conv/ReLU layer for Grad-CAM (default: the last one before the head)")
    p.add_argument("--out", help="PNG to write (default gradcam_<image>.png; --quick: a temporary folder)")
    p.add_argument("--quick", action="store_true", help="run even without trained weights")
    args = p.parse_args(argv)

    try:
        predictor, trained = load_predictor(args.weights, args.quick)
    except PredictorError as e:
        print(e)
        return 1
    classes = predictor.classes
    gray = to_gray_array(load_image(args.image))
    faces, crops, whole = FaceFinder(largest=True).find(gray)
    if not faces:
        print(f"{args.image}: no face found")
        return 1
    face, box = crops[0], faces[0].box
    probs = predictor.predict(crops[:1])[0]
    if args.target is None:
        target = int(probs.argmax())
    else:
        target = classes.index(args.target) if args.target in classes else int(args.target)

    x = predictor.preprocess(crops[:1])                      # the exact model input
    layer = args.layer or default_cam_layer(predictor.model)
    cam = grad_cam(predictor.model, x, layer_name=layer, target=target)[0]
    sal = saliency(predictor.model, x, target=target)[0]

    top = np.argsort(probs)[::-1][:3]
    print(f"{Path(args.image).name}: face at {tuple(int(v) for v in box)}"
          + (" (whole image)" if whole else "") + ": "
          + ", ".join(f"{classes[i]} {probs[i]:.3f}" for i in top))
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="minifer_gradcam_")) / f"gradcam_{Path(args.image).stem}.png"
    else:
        out = Path(f"gradcam_{Path(args.image).stem}.png")
    figure(gray, box, face, probs, classes, cam, sal, target, layer, out, trained)
    print(f"explained '{classes[target]}' -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
