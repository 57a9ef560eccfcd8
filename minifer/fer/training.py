"""Training on FER2013 with checkpoints and exact resume (what ``python -m minifer.train`` runs).

    from minifer.fer.training import TrainOptions, Trainer
    trainer = Trainer(TrainOptions(data="fer2013_train_val.npz", epochs=15, out="runs/minivgg"))
    state = trainer.fit()                # best.npz, last.npz, checkpoint.npz, history.*, curves.png

With ``keep_epochs=N`` the weights of each of the last N epochs are kept too
(``OUT/epoch_NNN.npz``), to be averaged afterwards (:mod:`minifer.averaging`).

Every ``checkpoint_every`` steps and at the end of each epoch the whole training
state (weights, batch-norm statistics, optimizer buffers, schedule,
random-generator state, history) is written atomically to ``OUT/checkpoint.npz``
(:class:`Checkpoint`). ``resume=True`` continues exactly where that checkpoint
stopped: each epoch draws its shuffling, augmentation and dropout from one
generator whose state is saved, so an interrupted and resumed run computes the
same steps as an uninterrupted one. SIGINT / SIGTERM during :meth:`Trainer.fit`
save a checkpoint and return.

One training step (:meth:`Trainer.train_step`): scale the uint8 faces by the
model's ``preprocess`` scale, augment (on 0..1 pixels), take a random
``crop x crop`` window when the model is trained on crops, normalise with its
mean and std, optionally mix up, forward, loss (with a teacher's softened
probabilities when distilling), backward, clip, optimizer step, and the
schedule's step when it is driven per iteration.

Distilling runs the teacher on every batch's augmented faces (the most faithful
targets, but an ensemble teacher costs more than the student's own step), or, with
``soft_targets=PATH``, once over the clean training faces: the probabilities are
kept in ``PATH`` (computed on the first run, read on the next and on resume),
and each augmented face is taught its clean face's probabilities. With
``teacher_tta="flip"`` the teacher's probabilities are averaged over each face and
its mirror, so kept targets also hold for the mirrored faces the augmentation makes.
"""
import hashlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from .. import backend, optim, schedules, zoo
from ..io import WeightsError, atomic_write, load_npz, save_npz
from ..layers import DistillationLoss, SoftmaxCrossEntropy
from ..model import load_model
from . import augment, crowd, data
from .classes import CLASSES, FACE_SIZE, gray_preprocess, model_input, normalization
from .evaluation import evaluate
from .tta import model_tta_predict
from .transfer import freeze_blocks, load_pretrained_state, set_block_lr

OPTIMIZERS = ("sgd", "adam", "adamw")
LABEL_SETS = ("fer2013", "ferplus")
TARGETS = ("votes", "majority")


def print_line(line):
    """The default report of a run: print ``line`` and flush (the output is often a log file)."""
    print(line, flush=True)


class TrainingError(RuntimeError):
    """Training cannot go on: no checkpoint to resume, or the loss is no longer finite."""


@dataclass
class TrainOptions:
    """The recipe of one run; the fields are ``python -m minifer.train``'s options."""

    data: str                     # FER2013 .npz, fer2013.csv or image folder
    labels: str = "fer2013"       # LABEL_SETS: FER2013's one label per face, or FER+'s ten crowd votes
    target: str = "votes"         # with labels="ferplus": TARGETS (the vote distribution or its top vote)
    votes: str | None = None      # FER+ votes .npz (default: crowd.default_votes_path(data))
    train_split: str = "train"
    val_split: str = "val"
    model: str = "minivgg"        # a zoo.MODELS name
    init: str | None = None       # weights .npz: a minifer model (warm start) or converted VGG16
    freeze_blocks: int = 0        # with a VGG16 init: freeze conv blocks 1..N
    base_lr_scale: float = 1.0    # with a VGG16 init: lr factor of the conv blocks
    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"        # OPTIMIZERS
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"      # schedules.SCHEDULES
    warmup: float = 1.0           # warm-up epochs (cosine)
    clip: float = 0.0             # gradient-norm clip (0: off)
    augment: str = "standard"     # augment.PRESETS
    crop: int = 0                 # train on random crop x crop windows of the 48-px faces (0: whole faces)
    mixup: float = 0.0            # mixup alpha (0: off)
    label_smoothing: float = 0.0
    class_weights: float = 0.0    # inverse-frequency class-weight power (0: off)
    teacher: str | None = None    # weights file (a network or an ensemble) to distil from
    distill_temperature: float = 4.0
    distill_weight: float = 0.7   # weight of the teacher's term (labels: 1 - weight)
    soft_targets: str | None = None  # .npz keeping the teacher's probabilities of the clean faces (run once)
    teacher_tta: str = "none"     # "flip": the teacher's probabilities averaged over each face and its mirror
    balanced: bool = False        # resample classes evenly instead of shuffling
    seed: int = 0
    limit: int = 0                # only the first N training images
    val_limit: int = 0
    checkpoint_every: int = 100   # steps between mid-epoch checkpoints (0: off)
    keep_epochs: int = 0          # also keep the last N epochs' weights as OUT/epoch_NNN.npz (for averaging)
    stop_after: int = 0           # stop after this many steps of this run (testing resume)
    out: str = "runs/train"
    resume: bool = False          # continue from OUT/checkpoint.npz
    device: str | None = None     # "cpu" or "gpu"
    quiet: bool = False           # no progress bar

    @classmethod
    def from_namespace(cls, ns):
        """Options from an ``argparse.Namespace`` (or any object) with these attribute names."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


# ---------------------------------------------------------------------------------------
def build_model(opts, mean, std, log=print_line):
    """The zoo model with the FER class names and gray preprocessing; ``opts.init`` loaded.

    A minifer model file of the same architecture is a warm start (every array);
    converted VGG16 weights load into the layers that fit (the first conv
    gray-folded with ``mean``/``std``), then ``freeze_blocks`` and
    ``base_lr_scale`` apply.
    """
    model = zoo.build(opts.model, seed=opts.seed, classes=list(CLASSES), input_size=opts.crop or FACE_SIZE)
    model.meta.update(preprocess=gray_preprocess(mean, std))
    if opts.init:  # after setting preprocess: the gray fold of the first conv uses it
        arrays, meta = load_npz(opts.init)
        if "architecture" in meta:    # a minifer model of the same architecture: warm start
            model.load_state_dict(arrays)
            log(f"warm start from {opts.init} (all {len(arrays)} arrays)")
        else:                         # converted VGG weights: the layers that fit
            log(str(load_pretrained_state(model, arrays, meta, source=os.path.basename(opts.init))))
            freeze_blocks(model, opts.freeze_blocks)
            set_block_lr(model, {"base": opts.base_lr_scale})
    return model


def make_optimizer(opts, model):
    """SGD (momentum, Nesterov), Adam or AdamW over the model's parameters."""
    if opts.optimizer == "sgd":
        return optim.SGD(model.params(), lr=opts.lr, momentum=opts.momentum, nesterov=opts.nesterov,
                         weight_decay=opts.weight_decay)
    if opts.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {opts.optimizer!r}; use one of {OPTIMIZERS}")
    cls = optim.Adam if opts.optimizer == "adam" else optim.AdamW
    return cls(model.params(), lr=opts.lr, weight_decay=opts.weight_decay)


# ---------------------------------------------------------------------------------------
class Checkpoint:
    """The whole training state in one atomically written .npz."""

    def __init__(self, path):
        self.path = path

    def save(self, model, opt, sched, state):
        """Write weights, buffers, optimizer and schedule state, and the JSON-able ``state``."""
        arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
        opt_arrays, opt_scalars = opt.state_dict()
        arrays.update({f"opt/{k}": v for k, v in opt_arrays.items()})
        meta = dict(state, optimizer=opt_scalars, schedule=sched.state_dict(), kind="checkpoint")
        save_npz(self.path, arrays, meta)

    def load(self, model, opt, sched):
        """Restore ``model``, ``opt`` and ``sched`` in place -> the saved ``state``."""
        arrays, meta = load_npz(self.path)
        if meta.get("kind") != "checkpoint":
            raise WeightsError(f"{self.path}: not a training checkpoint")
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}, meta["optimizer"])
        sched.load_state_dict(meta["schedule"])
        return meta


def write_history(out, history):
    """``history.csv``, ``history.json`` and ``curves.png`` in folder ``out`` (atomically)."""
    if not history:
        return
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]:.6g}" if isinstance(h[k], float) else str(h[k])
                                         for k in keys) for h in history]
    atomic_write(os.path.join(out, "history.csv"), lambda f: f.write(("\n".join(lines) + "\n").encode()))
    atomic_write(os.path.join(out, "history.json"), lambda f: f.write(json.dumps(history, indent=1).encode()))
    plot_curves(history, os.path.join(out, "curves.png"))


def plot_curves(history, path):
    """Loss and accuracy per epoch, training and validation, as a PNG (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    a1.set_yscale("log")    # a distillation stage's training loss (T^2-scaled) sits far above cross-entropy
    a1.set_xlabel("epoch"), a1.set_ylabel("loss (log scale)"), a1.legend(), a1.grid(alpha=0.3)
    a2.plot(ep, [100 * h["train_acc"] for h in history], "o-", label="train (augmented)")
    a2.plot(ep, [100 * h["val_acc"] for h in history], "o-", label="validation")
    a2.set_xlabel("epoch"), a2.set_ylabel("accuracy (%)"), a2.legend(), a2.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), suffix=".png")
    plt.close(fig)


class Progress:
    """One-line progress bar on stderr: loss, accuracy, images/s, ETA."""

    def __init__(self, total, epoch, epochs, quiet, start=0):
        self.total, self.epoch, self.epochs, self.quiet, self.start = total, epoch, epochs, quiet, start
        self.t0, self.last = time.time(), 0.0

    def update(self, i, images, loss, acc, force=False):
        """Redraw after step ``i`` (at most twice a second unless ``force``)."""
        now = time.time()
        if self.quiet or (now - self.last < 0.5 and not force):
            return
        self.last = now
        rate = images / max(now - self.t0, 1e-9)
        eta = (self.total - i) * (now - self.t0) / max(i - self.start, 1)
        bar = "#" * int(20 * i / self.total)
        sys.stderr.write(f"\repoch {self.epoch}/{self.epochs} [{bar:<20}] {i}/{self.total} "
                         f"loss {loss:.4f} acc {acc * 100:.1f}% {rate:.0f} img/s ETA {eta:.0f}s ")
        sys.stderr.flush()

    def done(self):
        """End the progress line."""
        if not self.quiet:
            sys.stderr.write("\n")


# ---------------------------------------------------------------------------------------
class Trainer:
    """One training run: data, model, optimizer, schedule, loss, augmentation, checkpoint, state.

    The constructor loads the data and builds everything (or, with
    ``opts.resume``, restores it from ``OUT/checkpoint.npz``); :meth:`fit` trains.
    ``log`` receives each line of the run's report (default: :func:`print_line`).
    """

    def __init__(self, opts, log=print_line):
        self.opts, self.log = opts, log
        if opts.crop and not 8 <= opts.crop <= FACE_SIZE:
            raise TrainingError(f"--crop {opts.crop}: must be 0 (whole faces) or 8..{FACE_SIZE}")
        if opts.soft_targets and not opts.teacher:
            raise TrainingError("--soft-targets needs --teacher (the network whose probabilities it keeps)")
        if opts.teacher_tta != "none" and not opts.teacher:
            raise TrainingError("--teacher-tta needs --teacher")
        if opts.device:
            backend.use_device(opts.device)
        os.makedirs(opts.out, exist_ok=True)
        self.x_tr, self.y_tr = data.load_fer(opts.data, opts.train_split)
        self.x_va, self.y_va = data.load_fer(opts.data, opts.val_split)
        if opts.limit:
            self.x_tr, self.y_tr = self.x_tr[:opts.limit], self.y_tr[:opts.limit]
        if opts.val_limit:
            self.x_va, self.y_va = self.x_va[:opts.val_limit], self.y_va[:opts.val_limit]
        self.q_tr = None                 # (N, 7) vote distributions: the targets with FER+ votes
        if opts.labels == "ferplus":
            self._use_votes()
        mean, std = data.pixel_mean_std(self.x_tr)
        self.model = build_model(opts, mean, std, log)
        self.opt = make_optimizer(opts, self.model)
        self.steps_per_epoch = math.ceil(len(self.x_tr) / opts.batch_size)
        self.sched = schedules.make_schedule(opts.schedule, self.opt, opts.epochs, warmup=opts.warmup,
                                             steps_per_epoch=self.steps_per_epoch)
        self.teacher = self._load_teacher() if opts.teacher else None
        self.soft = None                 # (N, K) teacher probabilities of the clean training faces
        if opts.soft_targets:            # then the teacher is not run per step
            self.soft, self.teacher = self._soft_targets(), None
        if opts.teacher:
            self.loss_fn = DistillationLoss(opts.distill_temperature, opts.distill_weight, opts.label_smoothing)
        else:
            cw = data.class_weights(self.y_tr, opts.class_weights) if opts.class_weights else None
            self.loss_fn = SoftmaxCrossEntropy(opts.label_smoothing, cw)
        self.augment_fn = augment.make_train_augment(opts.augment)
        self.ckpt = Checkpoint(os.path.join(opts.out, "checkpoint.npz"))
        self.state = {"epoch": 0, "step": 0, "global_step": 0, "rng": None, "history": [], "best_acc": -1.0,
                      "args": asdict(opts), "mean": mean, "std": std, "wall": 0.0, "run": {}}
        self.stop_requested, self.steps_this_run = False, 0
        if opts.resume:
            self._resume()
        else:
            log(self.model.summary())
            log(f"train {len(self.x_tr)} images, validation {len(self.x_va)}; "
                f"{self.steps_per_epoch} steps/epoch")

    def _use_votes(self):
        """Swap FER2013's labels for FER+'s crowd: training faces whose top vote is unknown or
        not-a-face (or that have no votes) are left out, each kept face's target is its vote
        distribution (``target="votes"``) or top vote among the seven classes (``"majority"``);
        validation keeps the faces with a crowd majority (:func:`crowd.crowd_majority`) and
        measures against it."""
        opts = self.opts
        if opts.target not in TARGETS:
            raise TrainingError(f"--target {opts.target!r}: use one of {TARGETS}")
        path = opts.votes or crowd.default_votes_path(opts.data)
        v_tr = crowd.load_votes(path, opts.train_split)[:len(self.x_tr)]
        v_va = crowd.load_votes(path, opts.val_split)[:len(self.x_va)]
        if len(v_tr) != len(self.x_tr) or len(v_va) != len(self.x_va):
            raise TrainingError(f"{path}: fewer votes than faces")
        keep = crowd.trainable(v_tr)
        q = crowd.vote_distribution(v_tr[keep])
        self.x_tr, self.y_tr = self.x_tr[keep], q.argmax(axis=1).astype(np.uint8)
        self.q_tr = q if opts.target == "votes" else None
        y_va = crowd.crowd_majority(v_va)
        self.x_va, self.y_va = self.x_va[y_va >= 0], y_va[y_va >= 0]
        self.log(f"FER+ crowd {opts.target} from {path}: {keep.sum()} of {len(keep)} training faces, "
                 f"{len(self.y_va)} validation faces with a crowd majority")

    def _load_teacher(self):
        """The network or ensemble to distil from; it must name the same classes."""
        if self.opts.mixup or self.opts.class_weights:
            raise TrainingError("--teacher does not combine with --mixup or --class-weights")
        teacher = load_model(self.opts.teacher).eval()    # only ever evaluated (batch-norms folded by itself)
        normalization(teacher.meta)
        if teacher.meta.get("classes") != self.model.meta["classes"]:
            raise TrainingError(f"{self.opts.teacher}: the teacher's classes {teacher.meta.get('classes')} "
                                f"are not the student's")
        self.log(f"distilling from {self.opts.teacher} ({getattr(teacher, 'name', 'model')}), "
                 f"T={self.opts.distill_temperature}, weight {self.opts.distill_weight}")
        return teacher

    def _soft_targets(self):
        """The teacher's probabilities of the clean training faces (N, K): read from
        ``opts.soft_targets`` when it was made by this teacher for these faces, else computed
        (each member on its central crop, as it predicts) and saved there first."""
        path = self.opts.soft_targets
        with open(self.opts.teacher, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if os.path.exists(path):
            arrays, meta = load_npz(path)
            if (meta.get("teacher_sha256") != digest or meta.get("teacher_tta", "none") != self.opts.teacher_tta
                    or not np.array_equal(arrays.get("labels"), self.y_tr)):
                raise TrainingError(f"{path} keeps another teacher's, TTA's or other faces' probabilities; "
                                    f"delete it to compute them again")
            self.log(f"soft targets of {len(self.y_tr)} faces read from {path}")
            return arrays["probs"]
        t = time.time()
        probs = model_tta_predict(self.teacher, model_input(self.x_tr, self.teacher.meta), self.opts.teacher_tta)
        save_npz(path, {"probs": probs, "labels": self.y_tr},
                 {"teacher": self.opts.teacher, "teacher_sha256": digest, "teacher_tta": self.opts.teacher_tta,
                  "data": self.opts.data})
        self.log(f"soft targets of {len(self.y_tr)} faces computed in {time.time() - t:.0f}s -> {path}")
        return probs

    def _resume(self):
        """Restore model, optimizer, schedule and state from the checkpoint."""
        if not os.path.exists(self.ckpt.path):
            raise TrainingError(f"--resume: no checkpoint at {self.ckpt.path}")
        self.state = self.ckpt.load(self.model, self.opt, self.sched)
        self.model.meta.update(preprocess=gray_preprocess(self.state["mean"], self.state["std"]))
        self.log(f"resumed from {self.ckpt.path}: epoch {self.state['epoch'] + 1}, "
                 f"step {self.state['step']}/{self.steps_per_epoch}")

    # -- the loop --------------------------------------------------------------------------
    def fit(self):
        """Train until ``opts.epochs`` are done or a stop (signal, ``stop_after``) -> the state."""
        def on_signal(signum, frame):
            self.stop_requested = True
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.state["epoch"] < self.opts.epochs:
                done = self.run_epoch()
                if done is None:
                    return self.state
                self.end_epoch(*done)
                if self.stop_requested:
                    self.log("stopped after the epoch; continue with --resume")
                    return self.state
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        self.log(f"done: best validation accuracy {self.state['best_acc'] * 100:.2f}% -> "
                 f"{os.path.join(self.opts.out, 'best.npz')}")
        return self.state

    def epoch_order(self, rng):
        """The order of the training images for one epoch (shuffled or class-balanced)."""
        if self.opts.balanced:
            return data.balanced_sampler_indices(self.y_tr, len(self.y_tr), rng)
        return rng.permutation(len(self.y_tr))

    def run_epoch(self):
        """The training steps of the current epoch, from ``state["step"]`` on.

        Returns ``(running sums, training seconds)`` at the end of the epoch, or
        None when the run stopped mid-epoch (a checkpoint was saved).
        """
        opts, state, spe = self.opts, self.state, self.steps_per_epoch
        epoch = state["epoch"]
        rng = np.random.default_rng([opts.seed, epoch])
        order = self.epoch_order(rng)                     # drawn first: the same on resume
        if state["rng"] is not None:                      # mid-epoch resume: restore the stream
            rng.bit_generator.state = state["rng"]
        self.model.seed(rng)
        self.model.train()
        run = state["run"] or {"loss": 0.0, "correct": 0, "seen": 0, "t": 0.0}
        prog = Progress(spe, epoch + 1, opts.epochs, opts.quiet, state["step"])
        t_start, start = time.time() - run["t"], state["step"]
        for step in range(start, spe):
            idx = order[step * opts.batch_size:(step + 1) * opts.batch_size]
            soft = None if self.soft is None else self.soft[idx]
            y = self.y_tr[idx] if self.q_tr is None else self.q_tr[idx]
            loss, correct = self.train_step(self.x_tr[idx], y, rng, epoch, step, soft)
            run["loss"] += loss * len(idx)
            run["correct"] += correct
            run["seen"] += len(idx)
            state["global_step"] += 1
            self.steps_this_run += 1
            prog.update(step + 1, (step + 1 - start) * opts.batch_size, run["loss"] / run["seen"],
                        run["correct"] / run["seen"])
            if step + 1 < spe and self._mid_epoch_checkpoint(step, rng, run, t_start):
                prog.done()
                self.log(f"stopped at epoch {epoch + 1} step {step + 1}; checkpoint saved, "
                         f"continue with --resume")
                return None
        prog.done()
        return run, time.time() - t_start

    def _stopping(self):
        """A signal came, or ``stop_after`` steps of this run are done."""
        return self.stop_requested or bool(self.opts.stop_after and self.steps_this_run >= self.opts.stop_after)

    def _mid_epoch_checkpoint(self, step, rng, run, t_start):
        """Save a checkpoint after ``step`` when one is due -> True when the run must stop."""
        every = self.opts.checkpoint_every
        stop = self._stopping()
        if stop or (every and (step + 1) % every == 0):
            run["t"] = time.time() - t_start
            self.state.update(step=step + 1, rng=rng.bit_generator.state, run=run)
            self.ckpt.save(self.model, self.opt, self.sched, self.state)
        return stop

    def train_step(self, x_uint8, y, rng, epoch=0, step=0, soft=None):
        """One optimizer step on uint8 faces ``x_uint8`` (B,H,W) and labels ``y`` (B,) or target
        distributions (B, K) -> (loss, correct against the labels or the distributions' top class);
        ``soft`` (B, K): the teacher's kept probabilities of these faces, when distilling from them."""
        opts = self.opts
        scale, mean, std = normalization(self.model.meta)
        faces = self.augment_fn((x_uint8.astype(np.float32) * scale)[..., None], rng)   # (B, 48, 48, 1)
        x01 = augment.random_crop_to(faces, rng, opts.crop) if opts.crop else faces
        xb = (x01 - mean) / std
        k = len(self.model.meta["classes"])
        target = y.astype(np.int64) if y.ndim == 1 else y.astype(np.float32)
        yb = target if y.ndim == 1 else target.argmax(axis=1)
        if opts.mixup:
            xb, target = augment.mixup(xb, augment.one_hot(target, k) if y.ndim == 1 else target, rng, opts.mixup)
        logits = self.model.forward(backend.to_device(xb))
        if self.teacher is not None:     # the same augmented faces, in the teacher's normalisation and views
            t_scale, t_mean, t_std = normalization(self.teacher.meta)
            tx = (faces * (t_scale / scale) - t_mean) / t_std
            soft = model_tta_predict(self.teacher, tx, opts.teacher_tta, batch_size=len(tx))
        if soft is not None:
            loss = self.loss_fn(logits, backend.to_device(target), soft)
        else:
            loss = self.loss_fn(logits, backend.to_device(target))
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} at epoch {epoch + 1} step {step}; "
                                f"last good checkpoint kept at {self.ckpt.path} (try a lower --lr)")
        self.model.backward(self.loss_fn.backward())
        if opts.clip:
            optim.clip_grad_norm(self.model.params(), opts.clip)
        self.opt.step()
        if self.sched.per_step:
            self.sched.step()
        return loss, int((backend.to_host(logits).argmax(1) == yb).sum())

    def end_epoch(self, run, train_time):
        """Validate, step a per-epoch schedule, log, save best/last, checkpoint, write the history."""
        opts, state, model = self.opts, self.state, self.model
        epoch = state["epoch"]
        r = evaluate(model, self.x_va, self.y_va)
        if not self.sched.per_step:
            self.sched.step(r["accuracy"])
        h = {"epoch": epoch + 1, "train_loss": run["loss"] / run["seen"],
             "train_acc": run["correct"] / run["seen"], "val_loss": r["loss"], "val_acc": r["accuracy"],
             "val_macro_f1": r["macro_f1"], "lr": float(self.opt.lr), "epoch_s": train_time,
             "img_per_s": run["seen"] / max(train_time, 1e-9)}
        state["history"].append(h)
        state["wall"] += train_time
        self.log(f"epoch {epoch + 1}/{opts.epochs}: train loss {h['train_loss']:.4f} "
                 f"acc {h['train_acc'] * 100:.2f}% | val loss {h['val_loss']:.4f} acc {h['val_acc'] * 100:.2f}% "
                 f"macro-F1 {h['val_macro_f1'] * 100:.2f}% | {h['epoch_s']:.0f}s, {h['img_per_s']:.0f} img/s, "
                 f"lr {h['lr']:.4g}")
        meta = {"training": {"epochs_done": epoch + 1, "val_acc": r["accuracy"], "args": asdict(opts)}}
        if r["accuracy"] > state["best_acc"]:
            state["best_acc"] = r["accuracy"]
            model.save(os.path.join(opts.out, "best.npz"), **meta)
        model.save(os.path.join(opts.out, "last.npz"), **meta)
        if epoch + 1 > opts.epochs - opts.keep_epochs:
            model.save(os.path.join(opts.out, f"epoch_{epoch + 1:03d}.npz"), **meta)
        state.update(epoch=epoch + 1, step=0, rng=None, run={})
        self.ckpt.save(model, self.opt, self.sched, state)
        write_history(opts.out, state["history"])
