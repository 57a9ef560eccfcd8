"""Batch-norm folding (``minifer.folding``): the unfolded network, ``model.eval(); model.forward(x)``
(which folds by itself) and a copy from ``fold_batchnorm``, at batch 1 and 256.

    python benchmarks/folding.py [--weights FILE] [--n 400]

The three run interleaved, call by call, so the machine's drift hits all alike; medians.
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
    model = load_model(resolve_weights(a.weights)).eval()
    folded = fold_batchnorm(model)
    runs = {"with batch-norm": lambda xb: model._run(xb, model._own_steps(), keep=False),   # layer by layer
            "model.forward": model.forward, "fold_batchnorm copy": folded.forward}
    x = np.random.default_rng(0).standard_normal((256, *model.meta["input_shape"]), dtype=np.float32)
    for threads in (1, 2):
        backend.set_blas_threads(threads)
        for batch, n in ((1, a.n), (256, max(4, a.n // 25))):
            xb = x[:batch]
            times = {name: [] for name in runs}
            for i in range(n + 3):
                for name, run in runs.items():
                    t = time.perf_counter()
                    run(xb)
                    if i >= 3:                        # three warm-up calls each
                        times[name].append(time.perf_counter() - t)
            med = {name: 1e3 * np.median(t) for name, t in times.items()}
            print(f"{threads} BLAS thread(s), batch {batch:3d}: "
                  + ", ".join(f"{name} {m:7.2f} ms" for name, m in med.items()))


if __name__ == "__main__":
    main()
