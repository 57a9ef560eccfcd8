"""Real-time budget of the predict command on this CPU.

    python benchmarks/realtime.py [--weights weights/minivgg_fer.npz] [--repeat 30]

Measures, as medians:

- one 640x480 frame with one face, end to end (gray conversion, Haar face
  detection, square crop, preprocessing, model): the budget is 33 ms (30 fps);
  at the default detection size (640 px) and at ``--detect-size 320``;
- the model alone per face (batch 1) and batched faces/s (batch 64);
- the command's cold start: process start to the first result line of
  ``python -m minifer.predict examples/images/astronaut.jpg`` (second run, so
  Numba's cache is warm), budget 2 s.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.bench import median_ms  # noqa: E402
from minifer.faces import square_crop  # noqa: E402
from minifer.images import load_image, to_gray_array  # noqa: E402
from minifer.predict import FaceFinder, Predictor, resolve_weights  # noqa: E402


def frame_640x480():
    """The astronaut photo (one face) centred on a 640x480 gray canvas."""
    face = to_gray_array(load_image(ROOT / "examples" / "images" / "astronaut.jpg"))   # 512x512
    frame = np.full((480, 640), 110, np.uint8)
    frame[:, 64:576] = face[16:496]
    return frame


def cold_start(weights):
    cmd = [sys.executable, "-m", "minifer.predict", "--weights", str(weights), str(ROOT / "examples/images/astronaut.jpg")]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        p.stdout.readline()          # header
        p.stdout.readline()          # first result
        times.append(time.perf_counter() - t)
        p.wait()
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--repeat", type=int, default=30)
    a = ap.parse_args()
    weights = resolve_weights(a.weights)
    pred = Predictor.load(weights)
    frame = frame_640x480()
    print(f"weights {weights}")
    for size in (640, 320):
        finder = FaceFinder(detect_size=size)
        boxes, crops, _ = finder.find(frame)
        t_det = median_ms(lambda: finder.detector.detect(frame), a.repeat)
        t_all = median_ms(lambda: pred.predict(finder.find(frame)[1]), a.repeat)
        print(f"640x480 frame, detect size {size}: {len(boxes)} face(s); detection {t_det:.1f} ms, "
              f"end to end {t_all:.1f} ms ({1000 / t_all:.0f} frames/s; budget 33 ms)")
    face = square_crop(frame, boxes[0])[None]
    print(f"crop + preprocess: {median_ms(lambda: pred.preprocess(square_crop(frame, boxes[0])[None]), a.repeat):.2f} ms")
    print(f"model only, one face: {median_ms(lambda: pred.predict(face), a.repeat):.2f} ms")
    faces = np.repeat(face, 64, axis=0)
    t = median_ms(lambda: pred.predict(faces), max(5, a.repeat // 5))
    print(f"model, batch of 64 faces: {64 / t * 1000:.0f} faces/s")
    cs = cold_start(weights)
    print("cold start to first result (3 runs): " + ", ".join(f"{c:.2f} s" for c in cs) + " (budget 2 s)")


if __name__ == "__main__":
    main()
