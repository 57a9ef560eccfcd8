"""``python -m minifer.bench``: how fast is minifer on this machine, and beside PyTorch?

Prints, for ``minivgg`` on 48x48x1 inputs:

- the machine's float32 matmul speed (GFLOP/s, a 2048^3 GEMM), the ceiling;
- training throughput (images/s, batch 64, forward + backward + SGD-Nesterov),
  inference throughput (batch 256) and single-image latency;
- with ``--torch-python PY`` (a Python that has PyTorch, e.g. a side venv's; default: this
  Python if it has PyTorch), the same network in PyTorch (``benchmarks/torch_minivgg.py``);
- the per-layer forward/backward time split of one training step.

Each side is measured as a new user's own script runs it: minifer's round builds ``minivgg()``,
trains it with ``SGD`` and ``SoftmaxCrossEntropy`` (forward, loss, backward, step) and then times
``model.eval(); model.forward(x)``, with no set-up call of any kind (:func:`minifer.timing.throughput`).
Every round of each side runs in its own fresh process (``--one-round`` for minifer), with an
environment cleaned of thread, BLAS-kernel and minifer variables (:func:`minifer.timing.clean_env`).
The sides alternate for ``--rounds`` rounds; every round is printed, and the table shows the
medians.
"""
import argparse
import json
import os
import sys

from . import timing, zoo
from ._version import add_version_option

FIGURES = (("training (batch {train}), images/s", "train_ips", True),
           ("inference (batch {infer}), images/s", "infer_ips", True),
           ("latency (batch 1), ms", "latency_ms", False))


def print_rounds(ms, ts):
    """Every round's figures, side by side."""
    for i, m in enumerate(ms):
        line = f"round {i + 1}: minifer " + " / ".join(f"{m[k]:.1f}" for _, k, _ in FIGURES)
        if i < len(ts):
            line += "   torch " + " / ".join(f"{ts[i][k]:.1f}" for _, k, _ in FIGURES)
        print(line + "   (train img/s / infer img/s / latency ms)")


def print_table(ms, ts, args):
    """The medians over the rounds, and the ratios (> 1: minifer faster)."""
    m, t = timing.median_round(ms), (timing.median_round(ts) if ts else None)
    print(f"median of {len(ms)} rounds:")
    head = f"{'':<34}{'minifer':>10}" + (f"{'torch ' + t['version'].split('+')[0]:>14}{'ratio':>8}" if t else "")
    print(head)
    for label, key, higher in FIGURES:
        line = f"{label.format(train=args.train_batch, infer=args.infer_batch):<34}{m[key]:>10.1f}"
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
    print(f"{'layer':<16}{'type':<18}{'forward':>9}{'backward':>10}{'share':>8}")
    for name, typ, f, b in split:
        print(f"{name:<16}{typ:<18}{f * 1e3:>9.2f}{b * 1e3:>10.2f}{100 * (f + b) / total:>7.1f}%")
    print(f"{'total':<34}{sum(f for _, _, f, _ in split) * 1e3:>9.1f}"
          f"{sum(b for _, _, _, b in split) * 1e3:>10.1f}")


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m minifer.bench", description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median)")
    p.add_argument("--rounds", type=int, default=5, help="alternating minifer/PyTorch rounds")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--torch-python", metavar="PY", default=None,
                   help="a Python with PyTorch for the comparison (default: this one, if it has it)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--no-split", action="store_true", help="skip the per-layer table")
    p.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)  # a child's round
    add_version_option(p)
    args = p.parse_args(argv)
    if args.one_round:   # print this process's figures as JSON, for the parent
        print(json.dumps(timing.throughput(zoo.minivgg(), args.train_batch, args.infer_batch, args.repeat)))
        return 0
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gf = timing.matmul_gflops()     # OpenBLAS on all its threads
    print(f"machine: {threads} threads, float32 matmul {gf:.0f} GFLOP/s (2048^3)")
    gflop = zoo.minivgg().flops() / 1e9
    print(f"minivgg: {gflop:.3f} GFLOP/image forward; GEMM-bound training ceiling "
          f"~{gf / (3 * gflop):.0f} images/s")  # forward + two backward GEMMs per layer
    sizes = (args.train_batch, args.infer_batch, args.repeat)
    mine = timing.minifer_command(*sizes)
    theirs = None if args.no_torch else timing.torch_command(args.torch_python or sys.executable, *sizes)
    if not args.no_torch and theirs is None:
        print("(no PyTorch in that Python: --torch-python PY names one that has it)")
    ms, ts = [], []
    try:
        for r in range(max(1, args.rounds)):   # alternate which side goes first
            order = [("minifer", mine), ("torch", theirs)] if r % 2 == 0 else [("torch", theirs), ("minifer", mine)]
            for side, cmd in order:
                if cmd is not None:
                    (ms if side == "minifer" else ts).append(timing.run_side(cmd))
    except timing.SideError as e:
        print(f"python -m minifer.bench: error: a round failed: {e}")
        return 1
    print_rounds(ms, ts)
    print_table(ms, ts, args)
    if not args.no_split:
        print_split(timing.layer_split(zoo.minivgg(), args.train_batch), args.train_batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
