"""Measure how FER2013 frames its faces, and check that aligned crops classify as well as square ones.

    python scripts/face_alignment.py template --data ../shared/data/fer2013/fer2013_train_val.npz
    python scripts/face_alignment.py compare  --data ../shared/data/fer2013/fer2013_train_val.npz

``template``: YuNet is run on every Training face (upscaled 3x and padded with gray, so the
detector sees a face in a frame rather than a face that fills it); the median position of each
of the five landmarks, in 48x48 pixels, is ``minifer.fer.align.FER_LANDMARKS``. The median box
gives the square-crop margin that frames a face like FER2013 does.

``compare``: on PublicTest faces (never used for training), detected the same way, the shipped
model classifies (a) the original 48x48 face, (b) a square crop of the detector's box with
today's 20 % margin, (c) the same with the margin measured by ``template``, (d) the crop aligned
on the landmarks. ``--rotate D`` first turns each padded face by a random angle in [-D, D]
degrees, as a head tilted in a photo would be.
"""
import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minifer.fer.align import FER_LANDMARKS, align_crop, square_crop  # noqa: E402
from minifer.fer.classes import FACE_SIZE  # noqa: E402
from minifer.fer.data import load_fer  # noqa: E402
from minifer.fer.faces import FaceDetector  # noqa: E402
from minifer.fer.metrics import report  # noqa: E402
from minifer.fer.predictor import Predictor, resolve_weights  # noqa: E402

UP, PAD = 3, 72   # 48 px face -> 144 px, in a 288 px gray canvas


def canvas(face, angle=0.0):
    """A FER face upscaled and padded with gray, optionally turned by ``angle`` degrees."""
    big = cv2.resize(face, (FACE_SIZE * UP, FACE_SIZE * UP), interpolation=cv2.INTER_CUBIC)
    img = cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=128)
    if angle:
        c = img.shape[1] / 2
        img = cv2.warpAffine(img, cv2.getRotationMatrix2D((c, c), angle, 1.0), img.shape[::-1],
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=128)
    return img


def detect_all(faces, angles=None):
    """The best face of each canvas -> (index, canvas, Face) for the faces found."""
    det = FaceDetector(threshold=0.5, detect_size=0)
    for i, face in enumerate(faces):
        img = canvas(face, 0.0 if angles is None else angles[i])
        found = det.detect(img)
        if found:
            yield i, img, max(found, key=lambda f: f.score)


def template(x):
    pts, boxes = [], []
    for _, _, f in detect_all(x):
        pts.append((f.landmarks - PAD) / UP)
        boxes.append((np.array(f.box, np.float64) - [PAD, PAD, 0, 0]) / UP)
    pts, boxes = np.array(pts), np.array(boxes)
    print(f"faces found: {len(pts)} of {len(x)} ({100 * len(pts) / len(x):.1f} %)")
    names = ("right eye", "left eye", "nose tip", "right mouth", "left mouth")
    q1, med, q3 = np.percentile(pts, [25, 50, 75], axis=0)
    for n, a, m, b in zip(names, q1, med, q3):
        print(f"  {n:12s} x {m[0]:5.1f} (IQR {a[0]:.1f}-{b[0]:.1f})  y {m[1]:5.1f} (IQR {a[1]:.1f}-{b[1]:.1f})")
    print("FER_LANDMARKS = " + np.array2string(np.round(med, 1), separator=", "))
    bx, by, bw, bh = np.median(boxes, axis=0)
    side = np.median(boxes[:, 2:].max(1))
    print(f"median box x {bx:.1f} y {by:.1f} w {bw:.1f} h {bh:.1f}: a square crop of side "
          f"max(w, h) * (1 + margin) frames like FER2013 with margin = {48 / side - 1:.2f}")


def compare(x, y, predictor, rotate, seed, margin):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-rotate, rotate, len(x)) if rotate else None
    idx, views = [], {"original 48x48": [], "square, margin 0.20": [],
                      f"square, margin {margin:.2f}": [], "aligned": []}
    for i, img, f in detect_all(x, angles):
        idx.append(i)
        crops = (x[i], square_crop(img, f.box, 0.2), square_crop(img, f.box, margin),
                 align_crop(img, f.landmarks))
        for v, c in zip(views.values(), crops):
            v.append(c)
    idx = np.array(idx)
    print(f"PublicTest faces found: {len(idx)} of {len(x)}"
          + (f" (each turned by a random angle in [-{rotate}, {rotate}] degrees)" if rotate else ""))
    for name, crops in views.items():
        p = predictor.predict(np.stack(crops))
        pred = p.argmax(1)
        r = report(y[idx], pred, predictor.classes)
        print(f"  {name:22s} accuracy {100 * r['accuracy']:.2f} %  macro-F1 {100 * r['macro_f1']:.2f} %")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("template", "compare"))
    p.add_argument("--data", required=True)
    p.add_argument("--weights", default=None, help="compare: the model (default: the shipped one)")
    p.add_argument("--limit", type=int, default=None, help="only the first N faces")
    p.add_argument("--rotate", type=float, default=0.0, help="compare: random turn in [-D, D] degrees")
    p.add_argument("--margin", type=float, default=0.0, help="compare: the measured square margin")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    cv2.setNumThreads(1)
    if a.what == "template":
        x, _ = load_fer(a.data, "Training")
        template(x[:a.limit])
    else:
        x, y = load_fer(a.data, "PublicTest")
        predictor = Predictor.load(resolve_weights(a.weights))
        compare(x[:a.limit], y[:a.limit], predictor, a.rotate, a.seed, a.margin)
    print(f"(FER_LANDMARKS in the package: {FER_LANDMARKS.tolist()})")


if __name__ == "__main__":
    main()
