"""Optimizers against hand-computed updates; schedules; gradient clipping."""
import math

import numpy as np
import pytest

from minifer import optim, schedules
from minifer.layers import Parameter


def param(v, g, decay=True):
    p = Parameter(np.array(v, np.float64), decay=decay)
    p.grad = np.array(g, np.float64)
    return p


def test_sgd_momentum_nesterov_weight_decay():
    p = param([1.0, -2.0], [0.5, 0.5])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    opt.step()
    g = np.array([0.5, 0.5]) + 0.01 * np.array([1.0, -2.0])
    v = g
    w = np.array([1.0, -2.0]) - 0.1 * (g + 0.9 * v)
    np.testing.assert_allclose(p.data, w)
    p.grad = np.array([0.5, 0.5])
    opt.step()
    g2 = 0.5 + 0.01 * w
    v2 = 0.9 * v + g2
    np.testing.assert_allclose(p.data, w - 0.1 * (g2 + 0.9 * v2))


def test_plain_sgd_and_no_decay_and_frozen():
    a, b, c = param([1.0], [1.0]), param([1.0], [1.0], decay=False), param([1.0], [1.0])
    c.trainable = False
    optim.SGD([a, b, c], lr=0.5, momentum=0.0, weight_decay=1.0).step()
    assert a.data[0] == pytest.approx(1 - 0.5 * 2) and b.data[0] == pytest.approx(0.5) and c.data[0] == 1.0


def test_adam_matches_formula_and_adamw_decouples():
    p = param([1.0], [0.2])
    opt = optim.Adam([p], lr=0.01)
    w = 1.0
    m = v = 0.0
    for t in range(1, 4):
        p.grad = np.array([0.2 * t])
        opt.step()
        g = 0.2 * t
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        w -= 0.01 * (m / (1 - 0.9 ** t)) / (math.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    assert p.data[0] == pytest.approx(w, rel=1e-6)
    q = param([1.0], [0.0])
    optim.AdamW([q], lr=0.1, weight_decay=0.5).step()
    assert q.data[0] == pytest.approx(1 - 0.1 * 0.5)  # zero gradient: only the decoupled decay acts


def test_lr_scale_and_state_round_trip():
    p = param([1.0], [1.0])
    p.lr_scale = 0.1
    opt = optim.SGD([p], lr=1.0, momentum=0.9)
    opt.step()
    assert p.data[0] == pytest.approx(0.9)
    arrays, scalars = opt.state_dict()
    opt2 = optim.SGD([param([0.9], [1.0])], lr=0.3, momentum=0.9)
    opt2.load_state_dict(arrays, scalars)
    assert opt2.lr == 1.0 and opt2.t == 1 and np.allclose(opt2.state[0]["v"], 1.0)


def test_clip_grad_norm():
    a, b = param([0.0], [3.0]), param([0.0], [4.0])
    assert optim.clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    assert math.hypot(a.grad[0], b.grad[0]) == pytest.approx(1.0, rel=1e-5)
    assert optim.clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)


def test_schedules():
    opt = optim.SGD([param([0.0], [0.0])], lr=1.0)
    s = schedules.CosineLR(opt, total=10, warmup=2)
    lrs = [opt.lr] + [s.step() for _ in range(10)]
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12) and all(x >= y for x, y in zip(lrs[2:], lrs[3:]))
    opt.lr = 1.0
    st = schedules.StepLR(opt, step_size=3, gamma=0.5)
    assert [st.step() for _ in range(6)] == [1, 1, 0.5, 0.5, 0.5, 0.25]
    opt.lr = 1.0
    pl = schedules.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    assert [pl.step(v) for v in [0.5, 0.6, 0.6, 0.6, 0.7, 0.6, 0.6]] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    state = pl.state_dict()
    pl2 = schedules.ReduceLROnPlateau(opt)
    pl2.load_state_dict(state)
    assert pl2.lr == 0.25 and pl2.best == 0.7
