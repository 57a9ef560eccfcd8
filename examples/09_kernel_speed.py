"""How fast is im2col / col2im? NumPy reference vs Numba kernels (vs PyTorch unfold/fold).

    python examples/09_kernel_speed.py            # minivgg's six conv inputs at batch 64
    python examples/09_kernel_speed.py --quick    # batch 8, fewer repeats
    NUMBA_NUM_THREADS=1 python examples/09_kernel_speed.py   # one thread, to compare fairly

For each conv input shape of minivgg (3x3 kernels, stride 1, padding 1) it times, as the median of
--repeat calls after a warm-up:

* ``minifer.ops.reference.im2col`` / ``col2im``: readable NumPy, a loop over the 9 kernel taps;
* ``minifer.ops.cpu.im2col`` / ``col2im``: the Numba kernels minifer uses on the CPU;
* ``torch.nn.functional.unfold`` / ``fold`` on the same data in NCHW, when PyTorch is importable
  (its im2col and col2im), with torch's thread count set to Numba's.

All numbers are from this machine, now: close other programs and compare runs made the same way.
See docs/13_performance.md.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifer.ops import cpu, reference  # noqa: E402
from minifer.timing import median_ms  # noqa: E402

SHAPES = [(48, 48, 1), (48, 48, 32), (24, 24, 32), (24, 24, 64), (12, 12, 64), (12, 12, 128)]


def torch_fns(x, threads):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(threads)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))   # NCHW, torch's layout
    cols = F.unfold(xt, 3, padding=1)
    size = xt.shape[2:]
    return (lambda: F.unfold(xt, 3, padding=1)), (lambda: F.fold(cols, size, 3, padding=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="batch 8, 2 repeats")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.repeat = 8, 2

    import numba
    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    have_torch = False
    rows = []
    for h, w, c in SHAPES:
        x = rng.standard_normal((args.batch, h, w, c), dtype=np.float32)
        cols = cpu.im2col(x, 3, 3, 1, 1)
        assert np.array_equal(cols, reference.im2col(x, 3, 3, 1, 1))          # same numbers first
        r = {"shape": f"{args.batch}x{h}x{w}x{c}", "MB": cols.nbytes / 1e6,
             "im2col numpy": median_ms(lambda: reference.im2col(x, 3, 3, 1, 1), args.repeat),
             "im2col numba": median_ms(lambda: cpu.im2col(x, 3, 3, 1, 1), args.repeat),
             "col2im numpy": median_ms(lambda: reference.col2im(cols, x.shape, 3, 3, 1, 1), args.repeat),
             "col2im numba": median_ms(lambda: cpu.col2im(cols, x.shape, 3, 3, 1, 1), args.repeat)}
        t = None if args.no_torch else torch_fns(x, threads)
        if t is not None:
            have_torch = True
            r["im2col torch"] = median_ms(t[0], args.repeat)
            r["col2im torch"] = median_ms(t[1], args.repeat)
        rows.append(r)
        del cols

    cols_ = ["im2col numpy", "im2col numba"] + (["im2col torch"] if have_torch else []) + \
            ["col2im numpy", "col2im numba"] + (["col2im torch"] if have_torch else [])
    print(f"batch {args.batch}, 3x3 kernel, stride 1, padding 1; median of {args.repeat} runs, ms; "
          f"Numba threads: {threads}" + ("" if have_torch else "; PyTorch not importable (or --no-torch)"))
    print(f"{'input NHWC':<16}{'cols MB':>8}" + "".join(f"{c:>14}" for c in cols_)
          + f"{'numba speed-up':>16}")
    for r in rows:
        speedup = (r["im2col numpy"] + r["col2im numpy"]) / (r["im2col numba"] + r["col2im numba"])
        print(f"{r['shape']:<16}{r['MB']:>8.1f}" + "".join(f"{r[c]:>14.2f}" for c in cols_)
              + f"{speedup:>15.1f}x")
    print("speed-up: (numpy im2col + col2im) / (numba im2col + col2im)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
