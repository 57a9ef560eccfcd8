"""``python -m minifer.bench``: how fast is minifer on this machine?

Prints, for ``minivgg`` on 48x48x1 inputs:

- the machine's float32 matmul speed (GFLOP/s, a 2048^3 GEMM), the ceiling;
- training throughput (images/s, batch 64, forward + backward + SGD-Nesterov);
- inference throughput (batch 256) and single-image latency;
- the per-layer forward/backward time split of one training step;
- when PyTorch is importable (unless ``--no-torch``): the same architecture in
  PyTorch with the same thread count (``benchmarks/torch_minivgg.py``, run by
  this command in a child process), and the ratios.

Everything is timed as the median of ``--repeat`` runs after a warm-up. A
shared machine's speed drifts by tens of percent within minutes, so minifer and
PyTorch are measured in alternating rounds (``--rounds``); the table shows each
side's best round, and the training ratio of every round is printed too.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def median_time(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def median_ms(fn, repeat, warmup=1):
    return 1000 * median_time(fn, repeat, warmup)


def matmul_gflops(n=2048, repeat=5):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    t = median_time(lambda: a @ a, repeat)
    return 2 * n ** 3 / t / 1e9


def minifer_step(model, batch):
    """One training step closure (forward, loss, backward, SGD-Nesterov)."""
    from . import optim
    from .layers import SoftmaxCrossEntropy
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 48, 48, 1), dtype=np.float32)
    y = rng.integers(0, 7, batch)
    opt = optim.SGD(model.params(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loss = SoftmaxCrossEntropy()
    model.train()

    def step():
        loss(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()
    return step


def layer_split(model, batch, repeat=3):
    """Median forward and backward time of each layer in one training step (seconds)."""
    from .layers import SoftmaxCrossEntropy
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 48, 48, 1), dtype=np.float32)
    y = rng.integers(0, 7, batch)
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


def bench_minifer(args, model):
    """Training, inference and latency figures of one round."""
    res = {}
    res["train_ips"] = args.train_batch / median_time(minifer_step(model, args.train_batch), args.repeat)
    x = np.random.default_rng(1).standard_normal((args.infer_batch, 48, 48, 1), dtype=np.float32)
    model.eval()
    res["infer_ips"] = args.infer_batch / median_time(lambda: model.forward(x), args.repeat)
    x1 = x[:1]
    res["latency_ms"] = 1000 * median_time(lambda: model.forward(x1), max(20, args.repeat * 5), warmup=3)
    return res


TORCH_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_minivgg.py"


def torch_in_subprocess(args):
    """PyTorch's figures for the same architecture, from ``benchmarks/torch_minivgg.py``.

    It runs in a child process of this command: the package itself never imports
    PyTorch, and in one process PyTorch's OpenMP threads and NumPy's OpenBLAS
    threads would spin while waiting and steal each other's cores.
    """
    if importlib.util.find_spec("torch") is None or not TORCH_SCRIPT.exists():
        return None
    cmd = [sys.executable, str(TORCH_SCRIPT), "--repeat", str(args.repeat),
           "--train-batch", str(args.train_batch), "--infer-batch", str(args.infer_batch)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"(PyTorch comparison failed: {r.stderr.strip().splitlines()[-1:]})")
        return None
    return json.loads(r.stdout)


def best_round(rounds):
    """Each figure's best value over the rounds (most images/s, least latency)."""
    best = dict(rounds[0])
    for key in ("train_ips", "infer_ips"):
        best[key] = max(r[key] for r in rounds)
    best["latency_ms"] = min(r["latency_ms"] for r in rounds)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minifer.bench", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="alternating minifer/PyTorch rounds")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-split", action="store_true", help="skip the per-layer table")
    args = p.parse_args(argv)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gf = matmul_gflops()
    print(f"machine: {threads} threads, float32 matmul {gf:.0f} GFLOP/s (2048^3)")
    from . import zoo
    model = zoo.minivgg()
    gflop = model.flops() / 1e9
    print(f"minivgg: {gflop:.3f} GFLOP/image forward; GEMM-bound training ceiling "
          f"~{gf / (3 * gflop):.0f} images/s")  # forward + two backward GEMMs per layer
    ms, ts = [], []
    for _ in range(max(1, args.rounds)):
        ms.append(bench_minifer(args, model))
        t = None if args.no_torch else torch_in_subprocess(args)
        if t:
            ts.append(t)
    m, t = best_round(ms), (best_round(ts) if ts else None)
    if t:
        print("training images/s by round (minifer / torch = ratio): " + ", ".join(
            f"{a['train_ips']:.0f} / {b['train_ips']:.0f} = {a['train_ips'] / b['train_ips']:.2f}x"
            for a, b in zip(ms, ts)))
    print(f"best of {len(ms)} rounds:")
    rows = [("training (batch %d), images/s" % args.train_batch, "train_ips", True),
            ("inference (batch %d), images/s" % args.infer_batch, "infer_ips", True),
            ("latency (batch 1), ms", "latency_ms", False)]
    head = f"{'':<34}{'minifer':>10}" + (f"{'torch ' + t['version'].split('+')[0]:>14}{'ratio':>8}" if t else "")
    print(head)
    for label, key, higher in rows:
        line = f"{label:<34}{m[key]:>10.1f}"
        if t:
            ratio = m[key] / t[key] if higher else t[key] / m[key]
            line += f"{t[key]:>14.1f}{ratio:>7.2f}x"
        print(line)
    if t:
        print("(ratio > 1: minifer faster)")
    if not args.no_split:
        m["split"] = layer_split(zoo.minivgg(), args.train_batch)
        total = sum(f + b for _, _, f, b in m["split"])
        print(f"\nper-layer split of one training step (batch {args.train_batch}), ms:")
        print(f"{'layer':<14}{'type':<14}{'forward':>9}{'backward':>10}{'share':>8}")
        for name, typ, f, b in m["split"]:
            print(f"{name:<14}{typ:<14}{f * 1e3:>9.2f}{b * 1e3:>10.2f}{100 * (f + b) / total:>7.1f}%")
        print(f"{'total':<28}{sum(f for _, _, f, _ in m['split']) * 1e3:>9.1f}"
              f"{sum(b for _, _, _, b in m['split']) * 1e3:>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
