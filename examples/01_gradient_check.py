"""Check every layer's hand-written backward pass against numeric gradients; print a table.

    python examples/01_gradient_check.py            # every layer in several configurations
    python examples/01_gradient_check.py --quick    # one small case per layer (a few seconds)

For each case, minifer.gradcheck.check_layer compares backward() with float64 central differences
and reports the relative error max|analytic - numeric| / max|gradient| for the input (dx) and the
worst parameter. A correct backward pass gives ~1e-9 or less. The exit status is 1 if any case
exceeds --tol. See docs/06_gradient_checking.md.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minifer import Sequential  # noqa: E402
from minifer.gradcheck import check_layer, check_model, numeric_grad, rel_error  # noqa: E402
from minifer.layers import (AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dense, Dropout,  # noqa: E402
                            DistillationLoss, Flatten, GlobalAvgPool2d, MaxPool2d, ReLU,
                            SoftmaxCrossEntropy)


def layer_cases(quick, rng):
    """(layer, input shape) pairs; --quick keeps the first case of each layer type."""
    cases = [
        (Conv2d(2, 3, 3, padding=1, rng=rng), (2, 5, 5, 2)),
        (Conv2d(3, 4, 3, stride=2, padding=0, bias=False, rng=rng), (2, 7, 6, 3)),
        (Conv2d(2, 2, 5, stride=2, padding=2, rng=rng), (1, 7, 7, 2)),
        (Conv2d(3, 2, 1, rng=rng), (2, 4, 4, 3)),
        (Dense(6, 4, rng=rng), (3, 6)),
        (Dense(5, 3, bias=False, rng=rng), (4, 5)),
        (ReLU(), (2, 3, 3, 2)),
        (Dropout(0.3), (3, 6)),
        (Dropout(0.5), (2, 4, 4, 2)),
        (BatchNorm2d(2), (3, 4, 4, 2)),
        (BatchNorm1d(4), (5, 4)),
        (MaxPool2d(2), (2, 4, 4, 2)),
        (MaxPool2d(3, stride=2), (2, 7, 7, 2)),
        (MaxPool2d(3, stride=1), (1, 5, 5, 2)),
        (AvgPool2d(2), (2, 4, 4, 2)),
        (AvgPool2d(3, stride=2), (1, 7, 7, 2)),
        (GlobalAvgPool2d(), (2, 3, 3, 2)),
        (Flatten(), (2, 3, 3, 2)),
    ]
    if quick:
        seen, out = set(), []
        for layer, shape in cases:
            if type(layer) not in seen:
                seen.add(type(layer))
                out.append((layer, shape))
        return out
    return cases


def describe(layer):
    """A short configuration string: '3x3 2->3 s1 p1', 'D 6->4', 'p=0.3', ..."""
    c = layer.config()
    if "kernel_size" in c and "in_channels" in c:
        k = c["kernel_size"]
        s = f"{k}x{k} {c['in_channels']}->{c['out_channels']} s{c['stride']} p{c['padding']}"
        return s + ("" if c["bias"] else " no bias")
    if "kernel_size" in c:
        return f"{c['kernel_size']}x{c['kernel_size']} s{c['stride']}"
    if "in_features" in c:
        return f"{c['in_features']}->{c['out_features']}" + ("" if c["bias"] else " no bias")
    if "p" in c:
        return f"p={c['p']} (fixed mask)"
    if "num_features" in c:
        return f"{c['num_features']} channels, training mode"
    return ""


def loss_case(smoothing, weights, rng):
    """dL/dlogits of SoftmaxCrossEntropy vs central differences."""
    z = rng.standard_normal((4, 5))
    y = np.array([0, 3, 1, 3])
    f = SoftmaxCrossEntropy(label_smoothing=smoothing, class_weights=weights)
    f(z, y)
    analytic = f.backward()
    return {"x": rel_error(analytic, numeric_grad(lambda: f(z, y), z))}


def distillation_case(temperature, weight, rng):
    """dL/dlogits of DistillationLoss (labels + a teacher's softened probabilities) vs central differences."""
    z = rng.standard_normal((4, 5))
    y = np.array([0, 3, 1, 3])
    teacher = rng.dirichlet(np.ones(5), size=4)
    f = DistillationLoss(temperature, weight)
    f(z, y, teacher)
    analytic = f.backward()
    return {"x": rel_error(analytic, numeric_grad(lambda: f(z, y, teacher), z))}


def row(name, config, shape, errs, tol):
    dx = errs.get("x", float("nan"))
    params = {k: v for k, v in errs.items() if k != "x"}
    worst = max(params.items(), key=lambda kv: kv[1]) if params else None
    ok = max(errs.values()) < tol
    pcol = f"{worst[1]:.1e} ({worst[0]})" if worst else "-"
    print(f"{name:<20}{config:<30}{str(shape):<14}{dx:>10.1e}  {pcol:<22}{'ok' if ok else 'FAIL'}")
    return ok


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one small case per layer type")
    p.add_argument("--tol", type=float, default=1e-6, help="largest accepted relative error")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    print(f"{'layer':<20}{'config':<30}{'input':<14}{'dx error':>10}  {'worst parameter':<22}status")
    print("-" * 102)
    ok = True
    for layer, shape in layer_cases(args.quick, rng):
        errs = check_layer(layer, rng.standard_normal(shape))
        ok &= row(type(layer).__name__, describe(layer), shape, errs, args.tol)

    loss_cfgs = [(0.0, None), (0.1, None), (0.1, [1.0, 3.0, 0.5, 2.0, 1.0])]
    for smoothing, weights in loss_cfgs[:1] if args.quick else loss_cfgs:
        cfg = f"smoothing={smoothing}" + (", class weights" if weights else "")
        ok &= row("SoftmaxCrossEntropy", cfg, (4, 5), loss_case(smoothing, weights, rng), args.tol)
    for temperature, weight in [(4.0, 0.7)] if args.quick else [(4.0, 0.7), (2.0, 0.3)]:
        ok &= row("DistillationLoss", f"T={temperature}, weight={weight}", (4, 5),
                  distillation_case(temperature, weight, rng), args.tol)

    # no bias right before batch-norm: its gradient is exactly 0 in theory, so the relative error of
    # a few sampled entries would compare rounding noise with rounding noise
    model = Sequential([Conv2d(1, 4, 3, padding=1, bias=False, rng=rng), BatchNorm2d(4), ReLU(),
                        MaxPool2d(2), Flatten(), Dense(36, 8, bias=False, rng=rng), BatchNorm1d(8), ReLU(),
                        Dropout(0.2), Dense(8, 5, rng=rng)])
    errs = check_model(model, rng.standard_normal((4, 6, 6, 1)), np.array([0, 3, 1, 4]),
                       SoftmaxCrossEntropy(label_smoothing=0.1), max_checks=5 if args.quick else 20)
    ok &= row("whole model", "conv-bn-relu-pool-dense-bn...", (4, 6, 6, 1), errs, args.tol)

    print("-" * 102)
    print("all gradients agree" if ok else f"some gradients are wrong (relative error >= {args.tol})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
