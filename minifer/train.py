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
The training itself is :class:`minifer.fer.training.Trainer`.
"""
import argparse
import sys

from . import backend, schedules, zoo
from ._version import add_version_option
from .fer import augment, data, training
from .fer.training import TrainingError, TrainOptions
from .io import WeightsError

D = TrainOptions(data="")   # the defaults


def parse_args(argv=None):
    """The command line -> ``argparse.Namespace`` (the fields of :class:`TrainOptions`)."""
    p = argparse.ArgumentParser(prog="python -m minifer.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="FER2013 .npz, fer2013.csv or image folder")
    p.add_argument("--labels", default=D.labels, choices=training.LABEL_SETS,
                   help="FER2013's one label per face, or FER+'s ten crowd votes per face")
    p.add_argument("--target", default=D.target, choices=training.TARGETS,
                   help="with --labels ferplus: learn the vote distribution or its top vote")
    p.add_argument("--votes", help="with --labels ferplus: the FER+ votes .npz "
                   "(default: ../ferplus/ferplus_votes_train_val.npz beside the data's folder)")
    p.add_argument("--train-split", default=D.train_split)
    p.add_argument("--val-split", default=D.val_split)
    p.add_argument("--model", default=D.model, choices=sorted(zoo.MODELS))
    p.add_argument("--init", help="weights .npz to start from: a minifer model of the same "
                   "architecture (warm start) or converted VGG16 (the layers that fit)")
    p.add_argument("--freeze-blocks", type=int, default=D.freeze_blocks,
                   help="with --init: freeze conv blocks 1..N")
    p.add_argument("--base-lr-scale", type=float, default=D.base_lr_scale,
                   help="with --init: learning-rate factor for the conv blocks (head: 1)")
    p.add_argument("--epochs", type=int, default=D.epochs)
    p.add_argument("--batch-size", type=int, default=D.batch_size)
    p.add_argument("--optimizer", default=D.optimizer, choices=training.OPTIMIZERS)
    p.add_argument("--lr", type=float, default=D.lr)
    p.add_argument("--momentum", type=float, default=D.momentum)
    p.add_argument("--no-nesterov", dest="nesterov", action="store_false")
    p.add_argument("--weight-decay", type=float, default=D.weight_decay)
    p.add_argument("--schedule", default=D.schedule, choices=schedules.SCHEDULES)
    p.add_argument("--warmup", type=float, default=D.warmup, help="warm-up epochs (cosine)")
    p.add_argument("--clip", type=float, default=D.clip, help="gradient-norm clip (0: off)")
    p.add_argument("--augment", default=D.augment,
                   help="augmentation preset: " + ", ".join(augment.PRESETS))
    p.add_argument("--crop", type=int, default=D.crop,
                   help="train on random CROP x CROP windows of the 48-px faces (e.g. 44); the model then "
                        "sees the central crop, or ten crops with --tta tencrop (0: whole faces)")
    p.add_argument("--mixup", type=float, default=D.mixup, help="mixup alpha (0: off)")
    p.add_argument("--label-smoothing", type=float, default=D.label_smoothing)
    p.add_argument("--class-weights", type=float, default=D.class_weights,
                   help="inverse-frequency class-weight power (0: off, 0.5: sqrt, 1: balanced)")
    p.add_argument("--teacher", help="distil from this weights file (a network or an ensemble)")
    p.add_argument("--distill-temperature", type=float, default=D.distill_temperature)
    p.add_argument("--distill-weight", type=float, default=D.distill_weight,
                   help="weight of the teacher's softened probabilities (the labels get 1 - weight)")
    p.add_argument("--soft-targets", metavar="PATH",
                   help="with --teacher: run the teacher once over the clean training faces and keep its "
                        "probabilities in PATH (read back on later runs and on resume) instead of on every batch")
    p.add_argument("--teacher-tta", choices=("none", "flip"), default=D.teacher_tta,
                   help="with --teacher: average the teacher's probabilities over each face and its mirror "
                        "(flip-consistent targets for flipped training faces)")
    p.add_argument("--balanced", action="store_true", help="resample classes evenly instead of shuffling")
    p.add_argument("--seed", type=int, default=D.seed)
    p.add_argument("--limit", type=int, default=D.limit,
                   help="use only the first N training images (smoke runs)")
    p.add_argument("--val-limit", type=int, default=D.val_limit)
    p.add_argument("--checkpoint-every", type=int, default=D.checkpoint_every,
                   help="steps between mid-epoch checkpoints")
    p.add_argument("--keep-epochs", type=int, default=D.keep_epochs,
                   help="also keep the weights of each of the last N epochs (OUT/epoch_NNN.npz) for averaging")
    p.add_argument("--stop-after", type=int, default=D.stop_after,
                   help="stop after this many steps (testing resume)")
    p.add_argument("--out", default=D.out)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--device", default=None, choices=["cpu", "gpu"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_version_option(p)
    return p.parse_args(argv)


def build_model(args, mean, std):
    """The model ``python -m minifer.train`` starts from (:func:`minifer.fer.training.build_model`)."""
    return training.build_model(TrainOptions.from_namespace(args), mean, std)


def train(args):
    """Run the training the parsed command line asks for -> the final state."""
    return training.Trainer(TrainOptions.from_namespace(args)).fit()


def main(argv=None):
    """Command-line entry point; returns the exit code (0 done or stopped with a checkpoint, 2 error)."""
    args = parse_args(argv)
    try:
        train(args)
    except (TrainingError, data.DataError, WeightsError, backend.DeviceError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
