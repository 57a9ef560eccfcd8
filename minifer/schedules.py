"""Learning-rate schedules. Call ``sched.step()`` once per epoch (or per
iteration, if you built it in iterations); it sets ``optimizer.lr``.

- StepLR:    lr = base * gamma ** floor(t / step_size)
- CosineLR:  linear warmup for ``warmup`` steps, then
             lr = min_lr + (base - min_lr) * (1 + cos(pi * progress)) / 2
- ReduceLROnPlateau: lr *= factor after ``patience`` steps without improvement
  of the monitored value (``step(value)``).
"""
import math


class Schedule:
    def __init__(self, optimizer):
        self.opt = optimizer
        self.base_lr = optimizer.lr
        self.t = 0

    def step(self, value=None):
        self.t += 1
        self.opt.lr = self.lr_at(self.t)
        return self.opt.lr

    def state_dict(self):
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, d):
        self.t, self.base_lr = d["t"], d["base_lr"]
        self.opt.lr = self.lr_at(self.t)


class Constant(Schedule):
    def lr_at(self, t):
        return self.base_lr


class StepLR(Schedule):
    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineLR(Schedule):
    def __init__(self, optimizer, total, warmup=0, min_lr=0.0):
        super().__init__(optimizer)
        self.total, self.warmup, self.min_lr = total, warmup, min_lr
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t):
        if t < self.warmup:
            return self.base_lr * (t + 1) / (self.warmup + 1)
        prog = min(1.0, (t - self.warmup) / max(1, self.total - self.warmup))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * prog))


class ReduceLROnPlateau(Schedule):
    """Monitor a value to maximise (mode='max', e.g. accuracy) or minimise (loss)."""

    def __init__(self, optimizer, factor=0.5, patience=3, mode="max", min_lr=1e-6):
        super().__init__(optimizer)
        self.factor, self.patience, self.mode, self.min_lr = factor, patience, mode, min_lr
        self.best, self.bad, self.lr = None, 0, optimizer.lr

    def step(self, value=None):
        self.t += 1
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad > self.patience:
                self.lr, self.bad = max(self.min_lr, self.lr * self.factor), 0
        self.opt.lr = self.lr
        return self.lr

    def state_dict(self):
        return {"t": self.t, "base_lr": self.base_lr, "best": self.best, "bad": self.bad, "lr": self.lr}

    def load_state_dict(self, d):
        self.t, self.base_lr, self.best, self.bad, self.lr = d["t"], d["base_lr"], d["best"], d["bad"], d["lr"]
        self.opt.lr = self.lr


def make_schedule(name, optimizer, epochs, warmup=0):
    name = name.lower()
    if name == "cosine":
        return CosineLR(optimizer, total=epochs, warmup=warmup)
    if name == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3))
    if name == "plateau":
        return ReduceLROnPlateau(optimizer)
    if name in ("constant", "none"):
        return Constant(optimizer)
    raise ValueError(f"unknown schedule {name!r} (cosine, step, plateau, constant)")
