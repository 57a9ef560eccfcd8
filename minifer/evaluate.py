"""``python -m minifer.evaluate``: accuracy, macro-F1, per-class scores and the confusion matrix,
against FER2013's labels and, where FER+'s votes exist for the split, against the crowd.

    python -m minifer.evaluate --data ../shared/data/fer2013/fer2013_train_val.npz --split val
    python -m minifer.evaluate --model fer2013 --data ... --tta flip --calibration rel.png

Without ``--weights`` or ``--model`` it measures the default model. ``--data`` takes any
form :func:`minifer.fer.data.load_fer` reads (npz, Kaggle csv, image folders); for a csv,
``--split`` picks the ``Usage`` value. The FER+ votes (``--votes``; by default
``../ferplus/ferplus_votes_train_val.npz`` beside the data's folder, used when it is there)
add the crowd majority's accuracy, the crowd share, the clear expressions named and the
calibration against the votes (``--calibration PNG`` draws its reliability diagram).
``--json`` prints one JSON object (accuracy, macro_f1, per_class, confusion_matrix,
images_per_s, crowd, ...). ``--confusion PATH`` saves the confusion matrix as a PNG.
The evaluation itself is :func:`minifer.fer.evaluation.evaluate`.
"""
import argparse
import json
import sys

from ._version import add_version_option
from .fer import crowd, data
from .fer.catalog import add_model_options
from .fer.evaluation import evaluate
from .fer.metrics import format_report, plot_confusion
from .fer.tta import TTA_MODES
from .fer.predictor import PredictorError, resolve_weights
from .io import WeightsError
from .model import load_model


def main(argv=None):
    """Command-line entry point; returns the exit code (0 ok, 2 bad input)."""
    p = argparse.ArgumentParser(prog="python -m minifer.evaluate", description=__doc__.split("\n")[0])
    add_model_options(p)
    p.add_argument("--data", help="FER2013 .npz, fer2013.csv or image folder (required)")
    p.add_argument("--split", default="val", help="train, val (PublicTest), test (PrivateTest), or a csv Usage value")
    p.add_argument("--tta", nargs="?", const="flip", default="none", choices=TTA_MODES,
                   help="test-time augmentation (--tta alone means flip)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--confusion", metavar="PNG", help="save the confusion matrix picture here")
    p.add_argument("--votes", metavar="NPZ", help="FER+ votes (default: ../ferplus/"
                   f"{crowd.VOTES_FILE} beside the data's folder, when it is there)")
    p.add_argument("--no-votes", action="store_true", help="measure against FER2013's labels only")
    p.add_argument("--calibration", metavar="PNG", help="save the reliability diagram against the votes here")
    p.add_argument("--limit", type=int, default=0, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=256)
    add_version_option(p)
    args = p.parse_args(argv)
    if not args.data:
        p.error("--data is required")
    try:
        weights = resolve_weights(args.weights, args.model)
        model = load_model(weights)
        x, y = data.load_fer(args.data, args.split)
        votes = None if args.no_votes else crowd.votes_beside(args.data, args.split, len(x), args.votes)
        if args.limit:
            x, y = x[:args.limit], y[:args.limit]
            votes = None if votes is None else votes[:args.limit]
        if args.calibration and votes is None:
            raise ValueError(f"--calibration needs FER+ votes for split {args.split!r} (--votes)")
        r = evaluate(model, x, y, args.tta, args.batch_size, votes=votes)
        r["weights"] = str(weights)
        if args.confusion:
            plot_confusion(r, args.confusion, title=f"{args.split}, tta={args.tta}")
        if args.calibration:
            crowd.plot_reliability(r["crowd"], args.calibration)
    except (WeightsError, PredictorError, data.DataError, OSError, ValueError) as e:
        print(f"minifer.evaluate: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{weights} on {args.data} [{args.split}], {r['images']} images, tta={args.tta}")
        if "crowd" in r:
            print(crowd.format_crowd(r["crowd"]))
            print("against FER2013's labels:")
        print(format_report(r))
        print(f"\n{r['images_per_s']:.0f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
