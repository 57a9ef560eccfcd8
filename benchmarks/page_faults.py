"""Page faults and system CPU time of minivgg's training step and evaluation pass.

    python benchmarks/page_faults.py [--keep-freed-memory]

A block larger than glibc's mmap threshold gets fresh pages from the kernel, zero-filled on first
touch, every time it is allocated (docs/13_performance.md, section 3). This counts the minor page
faults and the system CPU time per call, after two warm-up calls: a training step at batch 64, and
``model.eval(); model.forward(x)`` at batch 256, in sub-batches (the default) and whole.
``--keep-freed-memory`` first calls ``backend.keep_freed_memory()`` (glibc's mallopt).
"""
import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minifer import backend, model as model_module, timing, zoo  # noqa: E402


def per_call(fn, n=5):
    """(minor faults, system CPU ms, wall ms) per call of fn, after two warm-up calls."""
    fn(), fn()
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(n):
        fn()
    r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t
    return (r1.ru_minflt - r0.ru_minflt) / n, 1e3 * (r1.ru_stime - r0.ru_stime) / n, 1e3 * wall / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep-freed-memory", action="store_true")
    a = ap.parse_args()
    if a.keep_freed_memory:
        backend.keep_freed_memory()
    model = zoo.minivgg()
    rows = [("training step, batch 64", timing.train_step_fn(model, 64))]
    x, _ = timing._random_batch(model, 256, seed=1)
    model.eval()
    rows.append(("evaluation, batch 256, sub-batches", lambda: model.forward(x)))

    def whole():
        saved, model_module.EVAL_CHUNK_BYTES = model_module.EVAL_CHUNK_BYTES, 1 << 40
        try:
            model.forward(x)
        finally:
            model_module.EVAL_CHUNK_BYTES = saved
    rows.append(("evaluation, batch 256, whole", whole))
    for name, fn in rows:
        faults, system, wall = per_call(fn)
        print(f"{name:<38} {faults:6.0f} minor faults, {system:6.1f} ms system CPU, {wall:7.1f} ms wall")


if __name__ == "__main__":
    main()
