"""Real-time budget of the predict command on this CPU.

    python benchmarks/realtime.py [--weights weights/minivgg_fer.npz] [--repeat 50]

Measures, with the settings ``python -m minifer.predict`` uses (OpenBLAS
limited to one thread, see :func:`minifer.backend.set_blas_threads`):

- one 640x480 BGR frame with one face through ``minifer.fer.video.analyze_frame``
  (gray conversion, Haar detection, square crop, preprocessing, model,
  tracker), median and 95th percentile, with the video defaults (detection on
  a 320-px copy, scale step 1.2) and with the photo defaults (640 px, 1.1).
  The budget is 33 ms (30 frames/s);
- the whole video command on a 90-frame clip of that frame moving slowly
  (decoding included), as its own summary line reports it;
- the model alone per face (batch 1) and batched faces/s (batch 64);
- the command's cold start: process start to the first result line of
  ``python -m minifer.predict examples/images/astronaut.jpg`` (warm Numba
  cache), budget 2 s.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer import backend  # noqa: E402
from minifer.fer.faces import (IMAGE_DETECT, VIDEO_DETECT, FaceFinder, FaceTracker,  # noqa: E402
                                quiet_opencv, square_crop)
from minifer.fer.images import load_image, to_gray_array  # noqa: E402
from minifer.fer.predictor import Predictor, resolve_weights  # noqa: E402
from minifer.timing import median_ms  # noqa: E402

BUDGET_MS = 33.0


def frame_640x480(shift=0):
    """The astronaut photo (one face) on a 640x480 gray canvas, moved ``shift`` px right."""
    face = to_gray_array(load_image(ROOT / "examples" / "images" / "astronaut.jpg"))   # 512x512
    frame = np.full((480, 640), 110, np.uint8)
    frame[:, 32 + shift:544 + shift] = face[16:496]
    return frame


def frame_times(frame, finder, pred, repeat):
    """Per-frame milliseconds of ``video.analyze_frame`` over ``repeat`` frames."""
    from minifer.fer.video import analyze_frame
    bgr = np.repeat(frame[..., None], 3, axis=2)
    tracker = FaceTracker()
    analyze_frame(bgr, finder, pred, tracker)          # warm-up
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        tracks, _ = analyze_frame(bgr, finder, pred, tracker)
        out.append(1000 * (time.perf_counter() - t))
    return np.array(out), len(tracks)


def video_command(weights, frames=90):
    """Run ``--video`` on a clip of the face drifting 1 px per frame, back and forth; its summary line."""
    import cv2
    with tempfile.TemporaryDirectory() as tmp:
        clip = os.path.join(tmp, "clip.avi")
        w = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
        for i in range(frames):
            w.write(cv2.cvtColor(frame_640x480(shift=abs(i % 64 - 32)), cv2.COLOR_GRAY2BGR))
        w.release()
        r = subprocess.run([sys.executable, "-m", "minifer.predict", "--weights", str(weights),
                            "--video", clip], capture_output=True, text=True, cwd=ROOT)
    return r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"


def cold_start(weights):
    """Seconds from process start to the first result line of the photo command, 3 runs."""
    cmd = [sys.executable, "-m", "minifer.predict", "--weights", str(weights),
           str(ROOT / "examples/images/astronaut.jpg")]
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
    """Print the measurements."""
    backend.set_cpu_policy()    # as minifer's command lines: passive OpenMP wait, freed memory kept
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--repeat", type=int, default=50)
    a = ap.parse_args()
    quiet_opencv()                                    # as the predict command does
    weights = resolve_weights(a.weights)
    pred = Predictor.load(weights)
    backend.set_blas_threads(1)                       # as the predict command does
    frame = frame_640x480()
    print(f"weights {weights}")
    for name, (size, step) in (("video", VIDEO_DETECT), ("photo", IMAGE_DETECT)):
        finder = FaceFinder(detect_size=size, scale_factor=step, guess_crops=False)
        ms, faces = frame_times(frame, finder, pred, a.repeat)
        med, p95 = np.median(ms), np.percentile(ms, 95)
        print(f"640x480 frame, {name} defaults (detect at {size} px, step {step}): {faces} face(s); "
              f"median {med:.1f} ms, p95 {p95:.1f} ms ({1000 / med:.0f} frames/s; budget "
              f"{BUDGET_MS:.0f} ms: {'met' if med <= BUDGET_MS else 'missed'})")
    print(f"video command, 90-frame 640x480 clip: {video_command(weights)}")
    boxes = FaceFinder(guess_crops=False).find(frame)[0]
    face = square_crop(frame, boxes[0])[None]
    print(f"crop + preprocess: {median_ms(lambda: pred.preprocess(square_crop(frame, boxes[0])[None]), a.repeat):.2f} ms")
    print(f"model only, one face: {median_ms(lambda: pred.predict(face), a.repeat):.2f} ms")
    faces = np.repeat(face, 64, axis=0)
    t = median_ms(lambda: pred.predict(faces), max(5, a.repeat // 5))
    print(f"model, batch of 64 faces: {64 / t * 1000:.0f} faces/s (1 BLAS thread)")
    cs = cold_start(weights)
    print("cold start to first result (3 runs): " + ", ".join(f"{c:.2f} s" for c in cs) + " (budget 2 s)")


if __name__ == "__main__":
    main()
