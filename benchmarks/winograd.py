"""Winograd F(4x4, 3x3) against im2col, layer by layer, forward and forward + backward.

    python benchmarks/winograd.py [--batch 64] [--repeat 7]

For each 3x3 convolution of minivgg, the two paths run alternately in one
process (``minifer.ops.WINOGRAD_MIN_CHANNELS`` switches Winograd off); the
table gives medians in ms and the ratio. The batch-1 column times a single
face's forward pass, as ``predict`` runs it.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minifer import ops  # noqa: E402
from minifer.layers.conv import conv_backward, conv_forward  # noqa: E402

LAYERS = [(48, 1, 32), (48, 32, 32), (24, 32, 64), (24, 64, 64), (12, 64, 128), (12, 128, 128)]  # (side, C, F)


def step(x, w, backward):
    out, cache = conv_forward(x, w, None, 1, 1)
    if backward:
        conv_backward(out, cache)


def timed(fn, winograd):
    ops.WINOGRAD_MIN_CHANNELS = 8 if winograd else 1 << 30
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layer':>18s} | {'fwd im2col':>10s} {'winograd':>9s} | {'fwd+bwd im2col':>14s} {'winograd':>9s} "
          f"{'ratio':>6s} | {'batch-1 fwd':>11s} {'winograd':>9s}")
    totals = np.zeros(6)
    for side, c, f in LAYERS:
        x = rng.standard_normal((args.batch, side, side, c), dtype=np.float32)
        x1 = x[:1].copy()
        w = (rng.standard_normal((3, 3, c, f), dtype=np.float32) * 0.1)
        cases = [lambda: step(x, w, False), lambda: step(x, w, True), lambda: step(x1, w, False)]
        res = []
        for fn in cases:
            reps = args.repeat * (20 if fn is cases[2] else 1)
            fn(), timed(fn, True), timed(fn, False)                              # warm-up, compile
            a, b = [], []
            for _ in range(reps):
                a.append(timed(fn, False))
                b.append(timed(fn, True))
            res += [1e3 * statistics.median(a), 1e3 * statistics.median(b)]
        totals += res
        print(f"{side:2d}x{side:<2d} {c:3d} -> {f:3d}     | {res[0]:10.2f} {res[1]:9.2f} | {res[2]:14.2f} {res[3]:9.2f} "
              f"{res[2] / res[3]:5.2f}x | {res[4]:11.3f} {res[5]:9.3f}")
    print(f"{'all six':>18s} | {totals[0]:10.2f} {totals[1]:9.2f} | {totals[2]:14.2f} {totals[3]:9.2f} "
          f"{totals[2] / totals[3]:5.2f}x | {totals[4]:11.3f} {totals[5]:9.3f}")


if __name__ == "__main__":
    main()
