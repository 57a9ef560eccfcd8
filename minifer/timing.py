"""Timing helpers and the measurements behind ``python -m minifer.bench``.

Every figure is the median of ``repeat`` runs after a warm-up: a shared
machine's speed drifts, and the median ignores the odd slow run. The model
functions read the input shape and the number of classes from the model's
metadata (``meta["input_shape"]``, ``meta["classes"]``), so any zoo model can be
timed on random data.

``benchmarks/torch_minivgg.py`` times the same network in PyTorch with
:func:`median_time`; :func:`torch_figures` runs it in a child process.
"""
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: The PyTorch side of the comparison (outside the package: minifer never imports PyTorch).
TORCH_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_minivgg.py"


def median_time(fn, repeat, warmup=1):
    """Median wall time of ``fn()`` in seconds over ``repeat`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def median_ms(fn, repeat, warmup=1):
    """:func:`median_time` in milliseconds."""
    return 1000 * median_time(fn, repeat, warmup)


def matmul_gflops(n=2048, repeat=5):
    """The machine's float32 matmul speed in GFLOP/s (an ``n x n`` GEMM): the ceiling."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    t = median_time(lambda: a @ a, repeat)
    return 2 * n ** 3 / t / 1e9


def _random_batch(model, batch, seed=0):
    """Random float32 input ``(batch, *input_shape)`` and integer labels for ``model``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *model.meta["input_shape"]), dtype=np.float32)
    return x, rng.integers(0, len(model.meta["classes"]), batch)


def train_step_fn(model, batch):
    """A closure running one training step (forward, loss, backward, SGD-Nesterov) on random data."""
    from . import optim
    from .layers import SoftmaxCrossEntropy
    x, y = _random_batch(model, batch)
    opt = optim.SGD(model.params(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss = SoftmaxCrossEntropy()
    model.train()

    def step():
        loss(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()
    return step


def layer_split(model, batch, repeat=3):
    """Median forward and backward time of each layer in one training step.

    Returns ``[(name, type name, forward seconds, backward seconds)]`` in layer order.
    """
    from .layers import SoftmaxCrossEntropy
    x, y = _random_batch(model, batch)
    loss = SoftmaxCrossEntropy()
    model.train()
    fwd = {l.name: [] for l in model.layers}
    bwd = {l.name: [] for l in model.layers}
    for _ in range(repeat + 1):
        z = x
        for l in model.layers:
            t = time.perf_counter()
            z = l.forward(z)
            fwd[l.name].append(time.perf_counter() - t)
        loss(z, y)
        d = loss.backward()
        for i, l in reversed(list(enumerate(model.layers))):
            l.need_input_grad = i > 0
            t = time.perf_counter()
            d = l.backward(d)
            bwd[l.name].append(time.perf_counter() - t)
    return [(l.name, type(l).__name__, statistics.median(fwd[l.name][1:]), statistics.median(bwd[l.name][1:]))
            for l in model.layers]


def throughput(model, train_batch=64, infer_batch=256, repeat=5):
    """Training and inference images/s and single-image latency of one round.

    Returns ``{"train_ips", "infer_ips", "latency_ms"}``.
    """
    res = {"train_ips": train_batch / median_time(train_step_fn(model, train_batch), repeat)}
    x, _ = _random_batch(model, infer_batch, seed=1)
    model.eval()
    res["infer_ips"] = infer_batch / median_time(lambda: model.forward(x), repeat)
    x1 = x[:1]
    res["latency_ms"] = 1000 * median_time(lambda: model.forward(x1), max(20, repeat * 5), warmup=3)
    return res


def best_round(rounds):
    """Each figure's best value over the rounds (most images/s, least latency)."""
    best = dict(rounds[0])
    for key in ("train_ips", "infer_ips"):
        best[key] = max(r[key] for r in rounds)
    best["latency_ms"] = min(r["latency_ms"] for r in rounds)
    return best


class TorchBenchError(RuntimeError):
    """The PyTorch comparison script failed; the message is its last line of stderr."""


def torch_figures(train_batch=64, infer_batch=256, repeat=5):
    """PyTorch's figures for minivgg from :data:`TORCH_SCRIPT`, or None without PyTorch.

    It runs in a child process: the package itself never imports PyTorch, and in
    one process PyTorch's OpenMP threads and NumPy's OpenBLAS threads would spin
    while waiting and steal each other's cores. Raises :class:`TorchBenchError`
    when the script fails.
    """
    if importlib.util.find_spec("torch") is None or not TORCH_SCRIPT.exists():
        return None
    cmd = [sys.executable, str(TORCH_SCRIPT), "--repeat", str(repeat),
           "--train-batch", str(train_batch), "--infer-batch", str(infer_batch)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise TorchBenchError(str(r.stderr.strip().splitlines()[-1:]))
    return json.loads(r.stdout)
