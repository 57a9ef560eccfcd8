"""NHWC or NCHW? Time one conv layer's forward + backward both ways.

    python benchmarks/layout.py [--batch 64] [--repeat 5]

Both paths lower the convolution to the same GEMMs with Numba im2col/col2im
kernels written the same way; they differ only in memory layout:

- NHWC (minifer): cols rows copy C contiguous values per tap; the GEMM result
  (N*OH*OW, F) *is* the NHWC output; batch-norm reduces a (N*H*W, C) matrix.
- NCHW: cols rows gather C values H*W apart; the GEMM result must be
  transposed to (N, F, OH, OW), and dout transposed back in the backward pass.

Prints milliseconds per layer for the conv layers of ``minivgg``.
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minifer.layers.conv import conv_backward, conv_forward  # noqa: E402
from minifer.timing import median_ms  # noqa: E402


@njit(parallel=True, cache=True)
def im2col_nchw(x, k, pad):
    n, c, h, w = x.shape
    cols = np.empty((n * h * w, c * k * k), dtype=x.dtype)   # stride 1, same padding
    for b in prange(n):
        for i in range(h):
            for j in range(w):
                row = (b * h + i) * w + j
                for ch in range(c):
                    for p in range(k):
                        hi = i - pad + p
                        for q in range(k):
                            wi = j - pad + q
                            v = x[b, ch, hi, wi] if 0 <= hi < h and 0 <= wi < w else 0.0
                            cols[row, (ch * k + p) * k + q] = v
    return cols


@njit(parallel=True, cache=True)
def col2im_nchw(cols, n, c, h, w, k, pad):
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    for b in prange(n):
        for i in range(h):
            for j in range(w):
                row = (b * h + i) * w + j
                for ch in range(c):
                    for p in range(k):
                        hi = i - pad + p
                        if 0 <= hi < h:
                            for q in range(k):
                                wi = j - pad + q
                                if 0 <= wi < w:
                                    dx[b, ch, hi, wi] += cols[row, (ch * k + p) * k + q]
    return dx


def nchw_step(x, wm, dout):
    """Forward + backward in NCHW. x (N,C,H,W), wm (C*K*K, F), dout (N,F,H,W)."""
    n, c, h, w = x.shape
    f = wm.shape[1]
    cols = im2col_nchw(x, 3, 1)
    out = np.ascontiguousarray((cols @ wm).reshape(n, h, w, f).transpose(0, 3, 1, 2))   # to NCHW
    g = np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).reshape(-1, f)                 # back to rows
    dw = cols.T @ g
    dx = col2im_nchw(g @ wm.T, n, c, h, w, 3, 1)
    return out, dw, dx


def nhwc_step(x, w, dout):
    out, cache = conv_forward(x, w, None, 1, 1)
    dx, dw, _ = conv_backward(dout, cache)
    return out, dw, dx


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'layer (H, C -> F)':<22}{'NHWC ms':>10}{'NCHW ms':>10}{'NCHW/NHWC':>11}")
    tot = [0.0, 0.0]
    for h, c, f in [(48, 32, 32), (24, 32, 64), (24, 64, 64), (12, 64, 128), (12, 128, 128)]:
        x = rng.standard_normal((a.batch, h, h, c), dtype=np.float32)
        w = rng.standard_normal((3, 3, c, f), dtype=np.float32)
        d = rng.standard_normal((a.batch, h, h, f), dtype=np.float32)
        xc, dc = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.ascontiguousarray(d.transpose(0, 3, 1, 2))
        wc = np.ascontiguousarray(w.transpose(2, 0, 1, 3)).reshape(-1, f)               # (C*K*K, F)
        o1, dw1, dx1 = nhwc_step(x, w, d)
        o2, dw2, dx2 = nchw_step(xc, wc, dc)
        assert np.allclose(o1.transpose(0, 3, 1, 2), o2, atol=1e-3) and np.allclose(dx1.transpose(0, 3, 1, 2), dx2, atol=1e-3)
        t1, t2 = median_ms(lambda: nhwc_step(x, w, d), a.repeat), median_ms(lambda: nchw_step(xc, wc, dc), a.repeat)
        tot[0] += t1
        tot[1] += t2
        print(f"{f'{h}x{h}, {c} -> {f}':<22}{t1:>10.1f}{t2:>10.1f}{t2 / t1:>10.2f}x")
    print(f"{'total':<22}{tot[0]:>10.1f}{tot[1]:>10.1f}{tot[1] / tot[0]:>10.2f}x")


if __name__ == "__main__":
    main()
