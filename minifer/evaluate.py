"""``python -m minifer.evaluate``: accuracy, macro-F1, per-class scores and the confusion matrix.

    python -m minifer.evaluate --weights minifer/fer/weights/minivgg_fer.npz \\
        --data ../shared/data/fer2013/fer2013_train_val.npz --split val --tta flip

``--data`` takes any form :func:`minifer.fer.data.load_fer` reads (npz, Kaggle csv,
image folders); for a csv, ``--split`` picks the ``Usage`` value. ``--json``
prints one JSON object (accuracy, macro_f1, per_class, confusion_matrix,
images_per_s, ...). ``--confusion PATH`` saves the confusion matrix as a PNG.
The evaluation itself is :func:`minifer.fer.evaluation.evaluate`.
"""
import argparse
import json
import sys

from . import backend
from ._version import add_version_option
from .fer import data
from .fer.evaluation import evaluate
from .fer.metrics import format_report, plot_confusion
from .fer.tta import TTA_MODES
from .io import WeightsError
from .model import load_model


def main(argv=None):
    """Command-line entry point; returns the exit code (0 ok, 2 bad input)."""
    p = argparse.ArgumentParser(prog="python -m minifer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True, help="FER2013 .npz, fer2013.csv or image folder")
    p.add_argument("--split", default="val", help="train, val (PublicTest), test (PrivateTest), or a csv Usage value")
    p.add_argument("--tta", nargs="?", const="flip", default="none", choices=TTA_MODES,
                   help="test-time augmentation (--tta alone means flip)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--confusion", metavar="PNG", help="save the confusion matrix picture here")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=256)
    add_version_option(p)
    args = p.parse_args(argv)
    backend.set_cpu_policy()
    try:
        model = load_model(args.weights)
        x, y = data.load_fer(args.data, args.split)
        if args.limit:
            x, y = x[:args.limit], y[:args.limit]
        r = evaluate(model, x, y, args.tta, args.batch_size)
        if args.confusion:
            plot_confusion(r, args.confusion, title=f"{args.split}, tta={args.tta}")
    except (WeightsError, data.DataError, OSError, ValueError) as e:
        print(f"minifer.evaluate: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{args.weights} on {args.data} [{args.split}], {r['images']} images, tta={args.tta}")
        print(format_report(r))
        print(f"\n{r['images_per_s']:.0f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
