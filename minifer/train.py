"""``python -m minifer.train``: train a model on FER2013 with checkpoints and resume.

    python -m minifer.train --data ../shared/data/fer2013/fer2013_train_val.npz \\
        --model minivgg --epochs 20 --out runs/minivgg

Every ``--checkpoint-every`` steps and at the end of each epoch the whole
training state (weights, batch-norm statistics, optimizer buffers, schedule,
random-generator state, history) is written atomically to ``OUT/checkpoint.npz``.
``--resume`` continues exactly where that checkpoint stopped: each epoch draws
its shuffling, augmentation and dropout from one generator whose state is
saved, so an interrupted and resumed run computes the same steps as an
uninterrupted one. Ctrl-C / SIGTERM save a checkpoint before exiting.

Outputs in ``OUT/``: ``best.npz`` (best validation accuracy), ``last.npz``,
``checkpoint.npz``, ``history.csv``, ``history.json``, ``curves.png``.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import numpy as np

from . import backend, optim, schedules, zoo
from .fer import augment, data
from .io import WeightsError, atomic_write, load_npz, save_npz
from .layers import SoftmaxCrossEntropy
from .evaluate import evaluate


class TrainingError(RuntimeError):
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m minifer.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 .npz, fer2013.csv or image folder")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--model", default="minivgg", choices=sorted(zoo.MODELS))
    p.add_argument("--init", help="weights .npz to start from: a minifer model of the same "
                   "architecture (warm start) or converted VGG16 (the layers that fit)")
    p.add_argument("--freeze-blocks", type=int, default=0, help="with --init: freeze conv blocks 1..N")
    p.add_argument("--base-lr-scale", type=float, default=1.0,
                   help="with --init: learning-rate factor for the conv blocks (head: 1)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--no-nesterov", dest="nesterov", action="store_false")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "step", "plateau", "constant"])
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs (cosine)")
    p.add_argument("--clip", type=float, default=0.0, help="gradient-norm clip (0: off)")
    p.add_argument("--augment", default="standard", help="augmentation preset: none, light, standard")
    p.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0: off)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--class-weights", type=float, default=0.0,
                   help="inverse-frequency class-weight power (0: off, 0.5: sqrt, 1: balanced)")
    p.add_argument("--balanced", action="store_true", help="resample classes evenly instead of shuffling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke runs)")
    p.add_argument("--val-limit", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between mid-epoch checkpoints")
    p.add_argument("--stop-after", type=int, default=0, help="stop after this many steps (testing resume)")
    p.add_argument("--out", default="runs/train")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--device", default=None, choices=["cpu", "gpu"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------
def build_model(args, mean, std):
    model = zoo.build(args.model, seed=args.seed)
    model.meta.update(preprocess={"color": "gray", "scale": 1 / 255, "mean": [mean], "std": [std]})
    if args.init:  # after setting preprocess: the gray fold of the first conv uses it
        from .fer.transfer import freeze_blocks, load_pretrained_state, set_block_lr
        arrays, meta = load_npz(args.init)
        if "architecture" in meta:    # a minifer model of the same architecture: warm start
            model.load_state_dict(arrays)
            print(f"warm start from {args.init} (all {len(arrays)} arrays)", flush=True)
        else:                         # converted VGG weights: the layers that fit
            print(load_pretrained_state(model, arrays, meta, source=os.path.basename(args.init)),
                  flush=True)
            freeze_blocks(model, args.freeze_blocks)
            set_block_lr(model, {"base": args.base_lr_scale})
    return model


def make_optimizer(args, model):
    if args.optimizer == "sgd":
        return optim.SGD(model.params(), lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
                         weight_decay=args.weight_decay)
    cls = optim.Adam if args.optimizer == "adam" else optim.AdamW
    return cls(model.params(), lr=args.lr, weight_decay=args.weight_decay)


def make_schedule(args, opt, steps_per_epoch):
    """Cosine and step schedules advance every step; plateau once per epoch."""
    if args.schedule == "cosine":
        return schedules.CosineLR(opt, total=args.epochs * steps_per_epoch,
                                  warmup=int(args.warmup * steps_per_epoch))
    if args.schedule == "step":
        return schedules.StepLR(opt, step_size=max(1, args.epochs // 3) * steps_per_epoch)
    return schedules.make_schedule(args.schedule, opt, args.epochs)


def epoch_order(args, y, rng):
    if args.balanced:
        return data.balanced_sampler_indices(y, len(y), rng)
    return rng.permutation(len(y))


# ---------------------------------------------------------------------------------------
class Checkpoint:
    """The whole training state in one atomically written .npz."""

    def __init__(self, path):
        self.path = path

    def save(self, model, opt, sched, state):
        arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
        opt_arrays, opt_scalars = opt.state_dict()
        arrays.update({f"opt/{k}": v for k, v in opt_arrays.items()})
        meta = dict(state, optimizer=opt_scalars, schedule=sched.state_dict(), kind="checkpoint")
        save_npz(self.path, arrays, meta)

    def load(self, model, opt, sched):
        arrays, meta = load_npz(self.path)
        if meta.get("kind") != "checkpoint":
            raise WeightsError(f"{self.path}: not a training checkpoint")
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")}, meta["optimizer"])
        sched.load_state_dict(meta["schedule"])
        return meta


def write_history(out, history):
    if not history:
        return
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(f"{h[k]:.6g}" if isinstance(h[k], float) else str(h[k])
                                         for k in keys) for h in history]
    atomic_write(os.path.join(out, "history.csv"), lambda f: f.write(("\n".join(lines) + "\n").encode()))
    atomic_write(os.path.join(out, "history.json"), lambda f: f.write(json.dumps(history, indent=1).encode()))
    plot_curves(history, os.path.join(out, "curves.png"))


def plot_curves(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    a1.set_xlabel("epoch"), a1.set_ylabel("cross-entropy"), a1.legend(), a1.grid(alpha=0.3)
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
        if not self.quiet:
            sys.stderr.write("\n")


# ---------------------------------------------------------------------------------------
def train(args):
    if args.device:
        backend.use_device(args.device)
    os.makedirs(args.out, exist_ok=True)
    x_tr, y_tr = data.load_fer(args.data, args.train_split)
    x_va, y_va = data.load_fer(args.data, args.val_split)
    if args.limit:
        x_tr, y_tr = x_tr[:args.limit], y_tr[:args.limit]
    if args.val_limit:
        x_va, y_va = x_va[:args.val_limit], y_va[:args.val_limit]
    mean, std = data.pixel_mean_std(x_tr)
    classes = list(data.CLASSES)
    model = build_model(args, mean, std)
    opt = make_optimizer(args, model)
    spe = math.ceil(len(x_tr) / args.batch_size)
    sched = make_schedule(args, opt, spe)
    per_step = args.schedule in ("cosine", "step")
    cw = data.class_weights(y_tr, args.class_weights) if args.class_weights else None
    loss_fn = SoftmaxCrossEntropy(args.label_smoothing, cw)
    aug = augment.make_train_augment(args.augment)
    ckpt = Checkpoint(os.path.join(args.out, "checkpoint.npz"))

    state = {"epoch": 0, "step": 0, "global_step": 0, "rng": None, "history": [], "best_acc": -1.0,
             "args": vars(args), "mean": mean, "std": std, "wall": 0.0, "run": {}}
    if args.resume:
        if not os.path.exists(ckpt.path):
            raise TrainingError(f"--resume: no checkpoint at {ckpt.path}")
        state = ckpt.load(model, opt, sched)
        mean, std = state["mean"], state["std"]
        print(f"resumed from {ckpt.path}: epoch {state['epoch'] + 1}, step {state['step']}/{spe}", flush=True)
    else:
        print(model.summary())
        print(f"train {len(x_tr)} images, validation {len(x_va)}; {spe} steps/epoch", flush=True)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    steps_this_run = 0
    try:
        while state["epoch"] < args.epochs:
            epoch = state["epoch"]
            rng = np.random.default_rng([args.seed, epoch])
            order = epoch_order(args, y_tr, rng)              # drawn first: the same on resume
            if state["rng"] is not None:                      # mid-epoch resume: restore the stream
                rng.bit_generator.state = state["rng"]
            model.seed(rng)
            model.train()
            run = state["run"] or {"loss": 0.0, "correct": 0, "seen": 0, "t": 0.0}
            prog = Progress(spe, epoch + 1, args.epochs, args.quiet, state["step"])
            t_start, start = time.time() - run["t"], state["step"]
            for step in range(start, spe):
                idx = order[step * args.batch_size:(step + 1) * args.batch_size]
                xb = (x_tr[idx].astype(np.float32) * np.float32(1 / 255))[..., None]
                xb = aug(xb, rng)
                xb = (xb - np.float32(mean)) / np.float32(std)
                yb = y_tr[idx].astype(np.int64)
                target = yb
                if args.mixup:
                    xb, target = augment.mixup(xb, augment.one_hot(yb, len(classes)), rng, args.mixup)
                logits = model.forward(backend.to_device(xb))
                loss = loss_fn(logits, backend.to_device(target))
                if not math.isfinite(loss):
                    raise TrainingError(f"loss became {loss} at epoch {epoch + 1} step {step}; "
                                        f"last good checkpoint kept at {ckpt.path} (try a lower --lr)")
                model.backward(loss_fn.backward())
                if args.clip:
                    optim.clip_grad_norm(model.params(), args.clip)
                opt.step()
                if per_step:
                    sched.step()
                run["loss"] += loss * len(idx)
                run["correct"] += int((backend.to_host(logits).argmax(1) == yb).sum())
                run["seen"] += len(idx)
                state["global_step"] += 1
                steps_this_run += 1
                prog.update(step + 1, (step + 1 - start) * args.batch_size, run["loss"] / run["seen"],
                            run["correct"] / run["seen"])
                last = step + 1 == spe
                if not last and (stop["flag"] or (args.stop_after and steps_this_run >= args.stop_after)
                                 or (args.checkpoint_every and (step + 1) % args.checkpoint_every == 0)):
                    run["t"] = time.time() - t_start
                    state.update(step=step + 1, rng=rng.bit_generator.state, run=run)
                    ckpt.save(model, opt, sched, state)
                    if stop["flag"] or (args.stop_after and steps_this_run >= args.stop_after):
                        prog.done()
                        print(f"stopped at epoch {epoch + 1} step {step + 1}; checkpoint saved, "
                              f"continue with --resume", flush=True)
                        return state
            prog.done()
            train_time = time.time() - t_start
            r = evaluate(model, x_va, y_va)
            if not per_step:
                sched.step(r["accuracy"])
            h = {"epoch": epoch + 1, "train_loss": run["loss"] / run["seen"],
                 "train_acc": run["correct"] / run["seen"], "val_loss": r["loss"], "val_acc": r["accuracy"],
                 "val_macro_f1": r["macro_f1"], "lr": float(opt.lr), "epoch_s": train_time,
                 "img_per_s": run["seen"] / max(train_time, 1e-9)}
            state["history"].append(h)
            state["wall"] += train_time
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {h['train_loss']:.4f} acc {h['train_acc'] * 100:.2f}% | "
                  f"val loss {h['val_loss']:.4f} acc {h['val_acc'] * 100:.2f}% macro-F1 {h['val_macro_f1'] * 100:.2f}% | "
                  f"{h['epoch_s']:.0f}s, {h['img_per_s']:.0f} img/s, lr {h['lr']:.4g}", flush=True)
            meta = {"training": {"epochs_done": epoch + 1, "val_acc": r["accuracy"], "args": vars(args)}}
            if r["accuracy"] > state["best_acc"]:
                state["best_acc"] = r["accuracy"]
                model.save(os.path.join(args.out, "best.npz"), **meta)
            model.save(os.path.join(args.out, "last.npz"), **meta)
            state.update(epoch=epoch + 1, step=0, rng=None, run={})
            ckpt.save(model, opt, sched, state)
            write_history(args.out, state["history"])
            if stop["flag"]:
                print("stopped after the epoch; continue with --resume", flush=True)
                return state
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(f"done: best validation accuracy {state['best_acc'] * 100:.2f}% -> {os.path.join(args.out, 'best.npz')}")
    return state


def main(argv=None):
    args = parse_args(argv)
    try:
        train(args)
    except (TrainingError, data.DataError, WeightsError, backend.DeviceError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
