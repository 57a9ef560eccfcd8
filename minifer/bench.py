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
The measurements are :mod:`minifer.timing`'s.
"""
import argparse
import os

from . import backend, timing, zoo
from ._version import add_version_option


def torch_figures(args):
    """PyTorch's figures (:func:`minifer.timing.torch_figures`), or None; a failure is printed."""
    try:
        return timing.torch_figures(args.train_batch, args.infer_batch, args.repeat)
    except timing.TorchBenchError as e:
        print(f"(PyTorch comparison failed: {e})")
        return None


def print_comparison(ms, ts, args):
    """The rounds' training ratios and the best-of-rounds table (minifer, and PyTorch when measured)."""
    m, t = timing.best_round(ms), (timing.best_round(ts) if ts else None)
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


def print_split(split, batch):
    """The per-layer forward/backward table of :func:`minifer.timing.layer_split`."""
    total = sum(f + b for _, _, f, b in split)
    print(f"\nper-layer split of one training step (batch {batch}), ms:")
    print(f"{'layer':<14}{'type':<14}{'forward':>9}{'backward':>10}{'share':>8}")
    for name, typ, f, b in split:
        print(f"{name:<14}{typ:<14}{f * 1e3:>9.2f}{b * 1e3:>10.2f}{100 * (f + b) / total:>7.1f}%")
    print(f"{'total':<28}{sum(f for _, _, f, _ in split) * 1e3:>9.1f}"
          f"{sum(b for _, _, _, b in split) * 1e3:>10.1f}")


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m minifer.bench", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="alternating minifer/PyTorch rounds")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-split", action="store_true", help="skip the per-layer table")
    add_version_option(p)
    args = p.parse_args(argv)
    backend.set_cpu_policy()
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gf = timing.matmul_gflops()
    print(f"machine: {threads} threads, float32 matmul {gf:.0f} GFLOP/s (2048^3)")
    model = zoo.minivgg()
    gflop = model.flops() / 1e9
    print(f"minivgg: {gflop:.3f} GFLOP/image forward; GEMM-bound training ceiling "
          f"~{gf / (3 * gflop):.0f} images/s")  # forward + two backward GEMMs per layer
    ms, ts = [], []
    for _ in range(max(1, args.rounds)):
        ms.append(timing.throughput(model, args.train_batch, args.infer_batch, args.repeat))
        t = None if args.no_torch else torch_figures(args)
        if t:
            ts.append(t)
    print_comparison(ms, ts, args)
    if not args.no_split:
        print_split(timing.layer_split(zoo.minivgg(), args.train_batch), args.train_batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
