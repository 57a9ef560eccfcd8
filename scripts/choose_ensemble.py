"""Rank every ensemble of some candidate networks on the validation split, to choose what to ship.

    python scripts/choose_ensemble.py A.npz B.npz C.npz ... --data ../shared/data/fer2013/fer2013_train_val.npz

1. computes each candidate's class probabilities on the validation split once (``--tta``, none by
   default), each with its own preprocessing and input size;
2. scores every subset of at least ``--min-members`` candidates by the accuracy and macro-F1 of the
   members' mean softmax, which is what :class:`minifer.model.Ensemble` predicts;
3. prints each candidate alone, then the ``--top`` subsets best first (accuracy, then macro-F1, then
   fewer members), as markdown tables.

``--labels ferplus`` scores against the FER+ crowd majority (:func:`minifer.fer.crowd.crowd_majority`,
the faces that have one; the votes from ``--votes`` or beside the data's folder) instead of
FER2013's labels.

``scripts/ship_ensemble.py`` then ships the chosen subset. The winner is chosen on the split it is
measured on, so its figure is slightly optimistic: say so wherever it is reported.
"""
import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.fer import crowd, data  # noqa: E402
from minifer.fer.classes import CLASSES, model_input  # noqa: E402
from minifer.fer.metrics import report  # noqa: E402
from minifer.fer.tta import TTA_MODES, model_tta_predict  # noqa: E402
from minifer.model import Ensemble, load_model  # noqa: E402


def score(probs, y, idx):
    """(accuracy, macro_f1, idx) of the mean of ``probs[i]`` for i in ``idx`` against labels ``y``."""
    mean = np.mean(np.asarray([probs[i] for i in idx], dtype=np.float64), axis=0)
    r = report(y, mean.argmax(axis=1), list(CLASSES))
    return r["accuracy"], r["macro_f1"], idx


def rank_subsets(probs, y, min_members=2):
    """Every subset of the candidates' probabilities ``probs`` (list of (N, K) arrays) with at least
    ``min_members``, scored against labels ``y`` -> list of (accuracy, macro_f1, indices), best first."""
    rows = [score(probs, y, idx) for k in range(min_members, len(probs) + 1)
            for idx in itertools.combinations(range(len(probs)), k)]
    return sorted(rows, key=lambda t: (-t[0], -t[1], len(t[2])))


def table(rows, names):
    """Markdown lines for ``rows`` of (accuracy, macro_f1, indices)."""
    lines = ["| members | accuracy | macro-F1 |", "|---|---|---|"]
    lines += [f"| {' + '.join(names[i] for i in idx)} | {acc * 100:.2f}% | {f1 * 100:.2f}% |"
              for acc, f1, idx in rows]
    return lines


def main():
    """Predict, rank and print (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("candidates", nargs="+", help="weights files of single networks")
    p.add_argument("--data", required=True)
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation of every member")
    p.add_argument("--min-members", type=int, default=2)
    p.add_argument("--top", type=int, default=10, help="print the best N subsets (default 10)")
    p.add_argument("--labels", choices=("fer2013", "ferplus"), default="fer2013",
                   help="score against FER2013's labels or the FER+ crowd majority")
    p.add_argument("--votes", help="with --labels ferplus: the votes .npz (default: beside the data's folder)")
    a = p.parse_args()
    if not 1 <= a.min_members <= len(a.candidates):
        raise SystemExit(f"error: --min-members must be in 1..{len(a.candidates)}")
    x, y = data.load_fer(a.data, "val")
    if a.labels == "ferplus":
        y = crowd.crowd_majority(crowd.load_votes(a.votes or crowd.default_votes_path(a.data), "val", len(x)))
        x, y = x[y >= 0], y[y >= 0]
    probs = []
    for f in a.candidates:
        m = load_model(f)
        if isinstance(m, Ensemble):
            raise SystemExit(f"error: {f} is an ensemble; candidates must be single networks")
        probs.append(model_tta_predict(m, model_input(x, m.meta), a.tta))
    print(f"{len(y)} validation images, labels {a.labels}, tta={a.tta}\n")
    print("\n".join(table([score(probs, y, (i,)) for i in range(len(probs))], a.candidates)))
    rows = rank_subsets(probs, y, a.min_members)
    print(f"\nthe best {min(a.top, len(rows))} of {len(rows)} subsets:\n")
    print("\n".join(table(rows[:a.top], a.candidates)))


if __name__ == "__main__":
    main()
