"""Real-time budget of ``python -m minifer.predict --video`` on this CPU.

    python benchmarks/realtime.py [--weights FILE] [--rounds 3] [--every 1 2 3] [--keep clip.mp4]

1. Makes a 640x480, 30 frames/s, 300-frame mp4 clip of one moving face: the astronaut photo
   (a real photograph, ``examples/images``), shrunk to 70-90 %, drifting, bobbing and tilting
   (+-8 degrees) over the cat photo as background.
2. Runs the whole command ``python -m minifer.predict --video clip.mp4 --json`` in fresh
   processes, for each ``--detect-every`` value, and takes the per-frame time as the command's
   wall time minus its start-up (the same command with ``--max-frames 1``), over the other 299
   frames. Rounds alternate between the settings; the median and every round are printed.
3. From the JSON Lines it prints the share of frames where the face was found and the number
   of track ids (the goal: >= 95 % and 1), and from the command's summary line the median and
   p95 per frame and the split by stage (decode, detect, align, classify, track, output).
4. The model alone per face (batch 1) and batched faces/s, as ``predict`` runs it (1 BLAS thread).

Pause other work on the machine (e.g. ``kill -STOP`` a training run) while this runs.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer import backend  # noqa: E402
from minifer.fer.predictor import Predictor, resolve_weights  # noqa: E402
from minifer.timing import median_ms  # noqa: E402

W, H, FPS, FRAMES = 640, 480, 30.0, 300


def make_clip(path, frames=FRAMES):
    """Write the moving-face clip (mp4v) to ``path``."""
    face = cv2.imread(str(ROOT / "examples/images/astronaut.jpg"))           # 512x512 BGR
    room = cv2.resize(cv2.imread(str(ROOT / "examples/images/chelsea_cat.jpg")), (W, H))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    for i in range(frames):
        t = i / FPS
        scale = 0.8 + 0.1 * math.sin(2 * math.pi * t / 7)
        angle = 8 * math.sin(2 * math.pi * t / 4)
        cx = W / 2 + 110 * math.sin(2 * math.pi * t / 6)
        cy = H / 2 + 30 * math.sin(2 * math.pi * t / 3)
        M = cv2.getRotationMatrix2D((256, 256), angle, scale)
        M[:, 2] += (cx - 256, cy - 256)
        frame = cv2.warpAffine(face, M, (W, H), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_TRANSPARENT, dst=room.copy())
        out.write(frame)
    out.release()


def run_command(clip, weights, every, max_frames=None):
    """One fresh ``predict --video`` process: (wall seconds, JSON rows, summary line)."""
    cmd = [sys.executable, "-m", "minifer.predict", "--video", str(clip), "--json",
           "--detect-every", str(every)]
    if weights:
        cmd += ["--weights", str(weights)]
    if max_frames:
        cmd += ["--max-frames", str(max_frames)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return wall, rows, r.stderr.strip().splitlines()[-1]


def main():
    """Print the measurements."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2], help="--detect-every values")
    ap.add_argument("--keep", default=None, help="also save the clip here")
    a = ap.parse_args()
    weights = resolve_weights(a.weights)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(a.keep or os.path.join(tmp, "clip.mp4"))
        make_clip(clip)
        print(f"clip: {FRAMES} frames {W}x{H} at {FPS:.0f} frames/s, one moving face; weights {weights}")
        per_frame = {e: [] for e in a.every}
        last = {}
        for r in range(a.rounds):
            for e in a.every:
                start, _, _ = run_command(clip, weights, e, max_frames=1)
                wall, rows, summary = run_command(clip, weights, e)
                per_frame[e].append(1e3 * (wall - start) / (len(rows) - 1))
                last[e] = rows, summary
        for e in a.every:
            rows, summary = last[e]
            found = sum(1 for row in rows if row["faces"])
            ids = {f["track_id"] for row in rows for f in row["faces"]}
            rounds = ", ".join(f"{v:.2f}" for v in per_frame[e])
            print(f"--detect-every {e}: {statistics.median(per_frame[e]):.2f} ms per frame "
                  f"(median of {a.rounds} rounds: {rounds}); face found in {found}/{len(rows)} "
                  f"frames ({100 * found / len(rows):.1f} %), {len(ids)} track id(s)")
            print(f"    its summary: {summary.split('video: ', 1)[-1]}")

    pred = Predictor.load(weights)
    backend.set_blas_threads(1)                       # as the predict command does
    face = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    print(f"model only, one face: {median_ms(lambda: pred.predict(face), 50):.2f} ms")
    faces = np.repeat(face, 64, axis=0)
    t = median_ms(lambda: pred.predict(faces), 10)
    print(f"model, batch of 64 faces: {64 / t * 1000:.0f} faces/s (1 BLAS thread)")


if __name__ == "__main__":
    main()
