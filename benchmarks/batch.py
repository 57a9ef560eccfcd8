"""Throughput of ``python -m minifer.batch`` against one ``predict`` process, on this machine.

    python benchmarks/batch.py [--photos 500] [--clip-s 120] [--rounds 3] [--workers 1 2]

1. Makes the inputs in a temporary folder: ``--photos`` copies of the example photos (the
   astronaut, one face, and the cat, none, in turn) and a 640x480, 30 frames/s clip of one moving
   face (``benchmarks/realtime.py``'s), ``--clip-s`` seconds long.
2. Baselines: one ``predict --json`` process for the photos and one ``predict --video --json``
   process for the clip, their wall times added (start-up included), on one core (``predict1``:
   the processes' CPU affinity set to core 0, as one worker has one CPU) and on the whole machine
   (``predict``: its threads on every core).
3. :func:`minifer.fer.batch_job.annotate` on the same inputs into a fresh folder with each
   ``--workers`` count, in one local Ray instance (2 CPUs) started before the rounds, as a
   cluster would be: its start-up and a 2-photo warm-up job (Ray Data's helper actors) are not
   counted, everything else is (reading what the inputs are, starting the actors, loading the
   model, the work, writing Parquet). Rounds rotate the order of the sides; each ratio is taken
   within a round. Prints every round and the medians.
4. Where the time goes, per core: a photo's decode, detection (with alignment) and classification,
   in this process; a frame's split from ``predict --video``'s summary line; writing Parquet.
5. Once, the whole command line with its embedded Ray instance, for the start-up cost.

``--inputs DIR`` makes the inputs there once and reuses them (make them before pausing anything).

Pause other work on the machine (e.g. ``kill -STOP`` a training run) while this runs.
"""
import argparse
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from realtime import FPS, make_clip  # noqa: E402

from minifer.fer.batch_job import PHOTOS_PER_TASK, annotate  # noqa: E402

IMAGES = [ROOT / "examples/images/astronaut.jpg", ROOT / "examples/images/chelsea_cat.jpg"]


def make_inputs(folder, photos, clip_s):
    (folder / "photos").mkdir(parents=True, exist_ok=True)
    for i in range(photos):
        shutil.copy(IMAGES[i % 2], folder / "photos" / f"p{i:04d}.jpg")
    make_clip(folder / "clip.mp4", frames=int(round(clip_s * FPS)))


def run(cmd, one_core=False):
    t = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, {0})) if one_core else None
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=pin)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed: {r.stderr.strip()[-500:]}")
    return time.perf_counter() - t, r


def predict_once(folder, one_core):
    """Seconds of the two predict processes (on one core, or on the whole machine)."""
    t1, _ = run([sys.executable, "-m", "minifer.predict", "--json", "-q", folder / "photos"],
                one_core)
    t2, _ = run([sys.executable, "-m", "minifer.predict", "--json", "--video", folder / "clip.mp4"],
                one_core)
    return t1 + t2


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def batch_once(folder, workers):
    """Seconds of one job, its output folder, and the CPU seconds this process (the driver) used."""
    out = folder / f"out{workers}"
    shutil.rmtree(out, ignore_errors=True)
    c = cpu_seconds()
    s = annotate([folder / "photos", folder / "clip.mp4"], out, workers=workers)
    assert s.failed == 0 and s.done == s.inputs, s
    return s.seconds, out, cpu_seconds() - c


def photo_split(folder, n=60):
    """Median ms of a photo's decode, detect + align, classify, on one core in this process."""
    import cv2

    from minifer import backend
    from minifer.fer.faces import FaceFinder
    from minifer.fer.images import load_image, to_gray_array
    from minifer.fer.predictor import Predictor, resolve_weights
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    cv2.setNumThreads(1)
    backend.set_workers(1)
    backend.set_blas_threads(1)
    pred, finder = Predictor.load(resolve_weights()), FaceFinder()
    times = {"decode": [], "detect": [], "classify": []}
    for p in sorted((folder / "photos").iterdir())[:n]:
        t0 = time.perf_counter()
        gray = to_gray_array(load_image(p))
        t1 = time.perf_counter()
        _, crops, _ = finder.find(gray)
        t2 = time.perf_counter()
        pred.predict(crops)
        t3 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[k].append(1e3 * v)
    os.sched_setaffinity(0, cpus)
    return {k: statistics.median(v) for k, v in times.items()}


def frame_split(folder):
    """``predict --video``'s summary line, its process on one core."""
    _, r = run([sys.executable, "-m", "minifer.predict", "--json", "--video", folder / "clip.mp4"],
               one_core=True)
    return r.stderr.strip().splitlines()[-1].split("video: ", 1)[-1]


def parquet_cost(out):
    """Milliseconds to write the job's faces table again, per 1000 rows."""
    import pyarrow.parquet as pq
    t = pq.read_table(out / "faces")
    path = out / "rewrite.parquet"
    t0 = time.perf_counter()
    pq.write_table(t, path)
    dt = time.perf_counter() - t0
    os.unlink(path)
    return 1e6 * dt / max(1, t.num_rows), t.num_rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--clip-s", type=float, default=120.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-cli", action="store_true", help="skip the command line's own run")
    ap.add_argument("--inputs", metavar="DIR",
                    help="make the inputs in DIR once and reuse them (default: a temporary folder)")
    a = ap.parse_args()
    import ray
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.inputs or tmp)
        if not (folder / "clip.mp4").exists():
            make_inputs(folder, a.photos, a.clip_s)
        frames = int(round(a.clip_s * FPS))
        print(f"inputs: {a.photos} photos ({a.photos - a.photos // 2} with one face), a "
              f"{a.clip_s:.0f} s 640x480 clip ({frames} frames); {os.cpu_count()} CPUs", flush=True)
        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        print(f"ray.init: {time.perf_counter() - t:.1f} s (not counted below)", flush=True)
        t = time.perf_counter()   # Ray Data starts its helper actors with the session's first job
        shutil.rmtree(folder / "warm-up", ignore_errors=True)
        annotate(sorted((folder / "photos").iterdir())[:2], folder / "warm-up", workers=1)
        print(f"warm-up job (2 photos): {time.perf_counter() - t:.1f} s (not counted)", flush=True)
        sides = ["predict1", "predict"] + [f"batch{w}" for w in a.workers]
        times, outs, driver = {s: [] for s in sides}, {}, {w: [] for w in a.workers}
        for r in range(a.rounds):
            order = sides[r % len(sides):] + sides[:r % len(sides)]
            for side in order:
                if side.startswith("predict"):
                    times[side].append(predict_once(folder, one_core=side == "predict1"))
                else:
                    w = int(side[5:])
                    sec, outs[w], cpu = batch_once(folder, w)
                    times[side].append(sec)
                    driver[w].append(cpu)
            print(f"round {r + 1}: " + ", ".join(f"{s} {times[s][-1]:.1f} s" for s in sides),
                  flush=True)
        ray.shutdown()
        for s in sides:
            print(f"{s}: median {statistics.median(times[s]):.1f} s, rounds "
                  + ", ".join(f"{v:.1f}" for v in times[s]))

        def ratio(fast, slow, what):       # throughput of `fast` over `slow`, round by round
            x = [a_ / b_ for a_, b_ in zip(times[slow], times[fast])]
            print(f"{what}: {statistics.median(x):.2f}x (rounds "
                  + ", ".join(f"{v:.2f}" for v in x) + ")")

        for w in a.workers:
            ratio(f"batch{w}", "predict1", f"batch --workers {w} vs one predict process on one core")
            ratio(f"batch{w}", "predict", f"batch --workers {w} vs one predict process, all cores")
            if w != 1 and 1 in a.workers:
                ratio(f"batch{w}", "batch1", f"batch --workers {w} vs --workers 1")
        import pandas as pd
        for w in a.workers:
            u = pd.read_parquet(outs[w] / "_units")
            ph, vi = u[u["kind"] == "photo"], u[u["kind"] == "video"]
            per = max(1, min(PHOTOS_PER_TASK, math.ceil((len(ph) + 1) / (4 * w))))
            tasks = len(vi) + math.ceil(len(ph) / per)
            print(f"--workers {w}, last round: worker "
                  f"{1e3 * ph['seconds'].sum() / len(ph):.1f} ms per photo, "
                  f"{1e3 * vi['seconds'].sum() / vi['frames'].sum():.2f} ms per frame; driver CPU "
                  f"{statistics.median(driver[w]):.1f} s per job (about {tasks} tasks)")
        split = photo_split(folder)
        print("a photo on one core: " + ", ".join(f"{k} {v:.1f} ms" for k, v in split.items()))
        print(f"a frame on one core, predict --video: {frame_split(folder)}")
        sizes = [p.stat().st_size for p in (folder / "photos").iterdir()]
        print(f"bytes: {statistics.mean(sizes) / 1e3:.0f} kB per photo, "
              f"{(folder / 'clip.mp4').stat().st_size / frames / 1e3:.1f} kB per frame of the clip")
        out = outs[a.workers[-1]]
        ms, rows = parquet_cost(out)
        print(f"Parquet: {ms:.3f} ms per 1000 face rows to write ({rows} rows)")
        if not a.no_cli:
            shutil.rmtree(folder / "cli", ignore_errors=True)
            sec, r = run([sys.executable, "-m", "minifer.batch", folder / "photos",
                          folder / "clip.mp4", "--out", folder / "cli"])
            last = r.stderr.strip().splitlines()[-1]
            print(f"the command line, embedded Ray included: {sec:.1f} s; {last}")


if __name__ == "__main__":
    main()
