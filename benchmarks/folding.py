"""Batch-norm folding (``minifer.folding``) against the plain model, at batch 1 and 256.

    python benchmarks/folding.py [--weights FILE] [--n 400]

The two models run interleaved, call by call, so the machine's drift hits both alike; medians.
With 1 and 2 OpenBLAS threads (``predict`` and ``serve`` use 1). Pause other work first.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minifer import backend  # noqa: E402
from minifer.fer.predictor import resolve_weights  # noqa: E402
from minifer.folding import fold_batchnorm  # noqa: E402
from minifer.model import load_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--n", type=int, default=400, help="calls at batch 1 (batch 256: n / 25)")
    a = ap.parse_args()
    backend.set_cpu_policy()
    plain = load_model(resolve_weights(a.weights)).eval()
    folded = fold_batchnorm(plain)
    x = np.random.default_rng(0).standard_normal((256, *plain.meta["input_shape"]), dtype=np.float32)
    for threads in (1, 2):
        backend.set_blas_threads(threads)
        for batch, n in ((1, a.n), (256, max(4, a.n // 25))):
            xb = x[:batch]
            for _ in range(3):
                plain.forward(xb), folded.forward(xb)
            ta, tb = [], []
            for _ in range(n):
                t = time.perf_counter()
                plain.forward(xb)
                ta.append(time.perf_counter() - t)
                t = time.perf_counter()
                folded.forward(xb)
                tb.append(time.perf_counter() - t)
            ma, mb = np.median(ta), np.median(tb)
            print(f"{threads} BLAS thread(s), batch {batch:3d}: with batch-norm {1e3 * ma:7.2f} ms, "
                  f"folded {1e3 * mb:7.2f} ms, {ma / mb:.2f}x")


if __name__ == "__main__":
    main()
