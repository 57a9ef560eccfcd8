"""Timing helpers and the measurements behind ``python -m minifer.bench``.

Every figure is the median of ``repeat`` runs after a warm-up: a shared
machine's speed drifts, and the median ignores the odd slow run. The model
functions read the input shape and the number of classes from the model's
metadata (``meta["input_shape"]``, ``meta["classes"]``), so any zoo model can be
timed on random data.

``benchmarks/torch_minivgg.py`` times the same network in PyTorch with
:func:`median_time`. ``python -m minifer.bench`` runs each side's rounds in fresh processes
(:func:`run_side`) with a clean environment (:func:`clean_env`).
"""
import json
import os
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
    """Median forward and backward time of each layer in one training step, a ReLU fused
    into the layer before it as ``model.forward`` runs it (shown as ``name+relu``).

    Returns ``[(name, type name, forward seconds, backward seconds)]`` in layer order.
    """
    from .layers import SoftmaxCrossEntropy
    x, y = _random_batch(model, batch)
    loss = SoftmaxCrossEntropy()
    model.train()
    steps = [(model.layers[i], relu) for i, relu in model._steps()]
    fwd, bwd = [[] for _ in steps], [[] for _ in steps]
    for _ in range(repeat + 1):
        z = x
        for k, (l, relu) in enumerate(steps):
            t = time.perf_counter()
            z = l.forward(z, relu=True) if relu else l.forward(z)
            fwd[k].append(time.perf_counter() - t)
        loss(z, y)
        d = loss.backward()
        for k in reversed(range(len(steps))):
            l = steps[k][0]
            l.need_input_grad = k > 0
            t = time.perf_counter()
            d = l.backward(d)
            bwd[k].append(time.perf_counter() - t)
    return [(l.name + ("+relu" if relu else ""), type(l).__name__ + ("+ReLU" if relu else ""),
             statistics.median(f[1:]), statistics.median(b[1:])) for (l, relu), f, b in zip(steps, fwd, bwd)]


def throughput(model, train_batch=64, infer_batch=256, repeat=5):
    """Training and inference images/s and single-image latency of one round, as a user's own
    script gets them: the training step of :func:`train_step_fn`, then ``model.eval()`` and
    ``model.forward(x)`` (nothing set up beforehand, no folded copy made by hand).

    Returns ``{"train_ips", "infer_ips", "latency_ms"}``.
    """
    res = {"train_ips": train_batch / median_time(train_step_fn(model, train_batch), repeat)}
    x, _ = _random_batch(model, infer_batch, seed=1)
    model.eval()
    res["infer_ips"] = infer_batch / median_time(lambda: model.forward(x), repeat)
    x1 = x[:1]
    res["latency_ms"] = 1000 * median_time(lambda: model.forward(x1), max(20, repeat * 5), warmup=3)
    return res


def median_round(rounds):
    """Each figure's median over the rounds (``train_ips``, ``infer_ips``, ``latency_ms``)."""
    out = dict(rounds[0])
    for key in ("train_ips", "infer_ips", "latency_ms"):
        out[key] = statistics.median(r[key] for r in rounds)
    return out


class SideError(RuntimeError):
    """One side of the comparison failed; the message is its last line of stderr."""


#: Variables that set a framework's threads, kernels or device: no side runs with any of them.
THREAD_VARIABLES = ("OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "NUMBA_", "GOTO_", "VECLIB_", "MINIFER_")


def clean_env():
    """``os.environ`` without any thread, BLAS-kernel or minifer variable (``OMP_WAIT_POLICY``,
    ``OPENBLAS_CORETYPE``, ``MINIFER_DEVICE``, ...), so each side runs as a new user's script does."""
    return {k: v for k, v in os.environ.items() if not k.startswith(THREAD_VARIABLES)}


def run_side(cmd):
    """Run one side's round in a fresh process with :func:`clean_env`; its JSON figures."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=clean_env())
    if r.returncode != 0:
        raise SideError(" ".join(r.stderr.strip().splitlines()[-1:]) or f"exit {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def minifer_command(train_batch=64, infer_batch=256, repeat=5):
    """The command that measures one minifer round (``python -m minifer.bench --one-round``)."""
    return [sys.executable, "-m", "minifer.bench", "--one-round", "--repeat", str(repeat),
            "--train-batch", str(train_batch), "--infer-batch", str(infer_batch)]


def torch_command(python, train_batch=64, infer_batch=256, repeat=5):
    """The command that measures one PyTorch round with :data:`TORCH_SCRIPT` under ``python``
    (a Python with PyTorch, e.g. a side venv's), or None when that Python has no PyTorch."""
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, env=clean_env())
    if probe.returncode != 0 or not TORCH_SCRIPT.exists():
        return None
    return [python, str(TORCH_SCRIPT), "--repeat", str(repeat),
            "--train-batch", str(train_batch), "--infer-batch", str(infer_batch)]
