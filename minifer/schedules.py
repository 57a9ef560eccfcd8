"""Learning-rate schedules. Call ``sched.step()`` once per epoch (or per
iteration, if you built it in iterations); it sets ``optimizer.lr``.

- StepLR:    lr = base * gamma ** floor(t / step_size)
- CosineLR:  linear warmup for ``warmup`` steps, then
             lr = min_lr + (base - min_lr) * (1 + cos(pi * progress)) / 2
- ReduceLROnPlateau: lr *= factor after ``patience`` steps without improvement
  of the monitored value (``step(value)``).

:func:`make_schedule` builds one by name, in epochs or in iterations. A schedule's
``per_step`` says how a training loop drives it: ``True``, every iteration
(when built with ``steps_per_epoch``); ``False`` (plateau), once per epoch with
the monitored value.
"""
import math


class Schedule:
    """Base class: ``step()`` advances the count ``t`` and sets ``optimizer.lr = lr_at(t)``."""

    per_step = True   # driven every iteration; False: once per epoch with a monitored value

    def __init__(self, optimizer):
        self.opt = optimizer
        self.base_lr = optimizer.lr
        self.t = 0

    def lr_at(self, t):
        """The learning rate after ``t`` steps."""
        raise NotImplementedError

    def step(self, value=None):
        """Advance one step (``value`` is used only by :class:`ReduceLROnPlateau`) -> the new lr."""
        self.t += 1
        self.opt.lr = self.lr_at(self.t)
        return self.opt.lr

    def state_dict(self):
        """JSON-able state for a checkpoint."""
        return {"t": self.t, "base_lr": self.base_lr}

    def load_state_dict(self, d):
        """Restore :meth:`state_dict` and set the optimizer's lr accordingly."""
        self.t, self.base_lr = d["t"], d["base_lr"]
        self.opt.lr = self.lr_at(self.t)


class Constant(Schedule):
    """``lr = base`` (stepped once per epoch, as it changes nothing)."""

    per_step = False

    def lr_at(self, t):
        """The base learning rate, whatever ``t``."""
        return self.base_lr


class StepLR(Schedule):
    """``lr = base * gamma ** floor(t / step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, t):
        """The learning rate after ``t`` steps."""
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineLR(Schedule):
    """Linear warm-up for ``warmup`` steps, then a cosine decay to ``min_lr`` at ``total``."""

    def __init__(self, optimizer, total, warmup=0, min_lr=0.0):
        super().__init__(optimizer)
        self.total, self.warmup, self.min_lr = total, warmup, min_lr
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t):
        """The learning rate after ``t`` steps."""
        if t < self.warmup:
            return self.base_lr * (t + 1) / (self.warmup + 1)
        prog = min(1.0, (t - self.warmup) / max(1, self.total - self.warmup))
        return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * prog))


class ReduceLROnPlateau(Schedule):
    """Monitor a value to maximise (mode='max', e.g. accuracy) or minimise (loss)."""

    per_step = False

    def __init__(self, optimizer, factor=0.5, patience=3, mode="max", min_lr=1e-6):
        super().__init__(optimizer)
        self.factor, self.patience, self.mode, self.min_lr = factor, patience, mode, min_lr
        self.best, self.bad, self.lr = None, 0, optimizer.lr

    def step(self, value=None):
        """One epoch with monitored ``value`` -> the new lr."""
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
        """JSON-able state for a checkpoint."""
        return {"t": self.t, "base_lr": self.base_lr, "best": self.best, "bad": self.bad, "lr": self.lr}

    def load_state_dict(self, d):
        """Restore :meth:`state_dict`."""
        self.t, self.base_lr, self.best, self.bad, self.lr = d["t"], d["base_lr"], d["best"], d["bad"], d["lr"]
        self.opt.lr = self.lr


SCHEDULES = ("cosine", "step", "plateau", "constant")


def make_schedule(name, optimizer, epochs, warmup=0, steps_per_epoch=1):
    """A schedule by name (:data:`SCHEDULES`).

    ``cosine`` decays over all ``epochs`` after ``warmup`` epochs (a float: it is
    rounded down to whole steps); ``step`` divides the lr by 10 every third of
    the run; ``plateau`` halves it after 3 epochs without a better monitored
    value; ``constant`` keeps it. With ``steps_per_epoch`` > 1, cosine and step
    are built in iterations (step them every batch); plateau and constant are
    always stepped once per epoch (see ``per_step``).
    """
    name = name.lower()
    if name == "cosine":
        return CosineLR(optimizer, total=epochs * steps_per_epoch, warmup=int(warmup * steps_per_epoch))
    if name == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3) * steps_per_epoch)
    if name == "plateau":
        return ReduceLROnPlateau(optimizer)
    if name in ("constant", "none"):
        return Constant(optimizer)
    raise ValueError(f"unknown schedule {name!r} ({', '.join(SCHEDULES)})")
