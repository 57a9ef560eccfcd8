"""FER+ crowd votes: ten people's answers per FER2013 face, as targets and as a yardstick.

FER+ (Barsoum et al. 2016, MIT licence) asked ten people about every FER2013 face.
The shared file (``shared/data/ferplus/ferplus_votes_train_val.npz``) holds, row
for row with the FER2013 arrays, the votes ``(N, 10)`` over the columns
:data:`VOTE_COLUMNS` (note: not FER2013's class order)::

    votes = load_votes("ferplus_votes_train_val.npz", "val")    # int16 (N, 10)
    counts = class_votes(votes)          # (N, 7) in CLASSES order (contempt, unknown, NF dropped)
    q = vote_distribution(votes)         # (N, 7) float32 rows summing to 1 (0 where no votes)
    y = crowd_majority(votes)            # (N,) int64: the top vote in CLASSES order, -1 when left out

The majority is the column with the most votes of all ten (the first on a tie); a
face whose top vote is contempt, unknown or not-a-face, or that has no votes, is
left out (-1), as FER+'s protocol leaves them out of training and of its test.
:func:`crowd_report` measures predictions against the crowd.
"""
import os

import numpy as np

from .classes import CLASSES

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
CLASS_COLUMN = np.array([4, 5, 6, 1, 3, 2, 0])   # CLASSES[k] is vote column CLASS_COLUMN[k]
VOTES_FILE = "ferplus_votes_train_val.npz"
CLEAR = 7                                         # votes out of 10 that make an expression "clear"


class VotesError(ValueError):
    """The votes file is missing, malformed, or does not match the faces."""


def default_votes_path(data_path):
    """Where the votes sit beside a shared FER2013 file: ``<data>/../../ferplus/`` + :data:`VOTES_FILE`."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(data_path))), "ferplus", VOTES_FILE)


def load_votes(path, split, n=None):
    """The votes ``(N, 10)`` int16 of ``split`` ("train" or "val"); ``n``: the faces' count to check."""
    from .data import canonical_split
    key = f"votes_{canonical_split(split)}"
    if not os.path.exists(path):
        raise VotesError(f"{path}: no such votes file (FER+ votes, {VOTES_FILE})")
    try:
        with np.load(path, allow_pickle=False) as z:
            if key not in z:
                raise VotesError(f"{path}: no votes for split {split!r} (has {', '.join(sorted(z.files))})")
            votes = np.asarray(z[key], np.int16)
    except (OSError, ValueError) as e:
        if isinstance(e, VotesError):
            raise
        raise VotesError(f"{path}: not a votes .npz ({e})") from None
    if votes.ndim != 2 or votes.shape[1] != len(VOTE_COLUMNS) or (votes < 0).any():
        raise VotesError(f"{path}: {key} must be non-negative counts (N, {len(VOTE_COLUMNS)}), got {votes.shape}")
    if n is not None and len(votes) != n:
        raise VotesError(f"{path}: {len(votes)} rows of votes for {n} faces of split {split!r}")
    return votes


def class_votes(votes):
    """Votes (N, 10) -> the votes of the seven classes (N, 7) in CLASSES order."""
    return np.asarray(votes)[:, CLASS_COLUMN]


def vote_distribution(votes):
    """The share of the seven classes' votes each class got (N, 7) float32 (all 0 without votes)."""
    c = class_votes(votes).astype(np.float32)
    return c / np.maximum(c.sum(axis=1, keepdims=True), 1)


def crowd_majority(votes):
    """The top vote of all ten columns as a CLASSES index (N,) int64; -1 where it is contempt,
    unknown or not-a-face, or where there are no votes."""
    votes = np.asarray(votes)
    top = votes.argmax(axis=1)
    to_class = np.full(len(VOTE_COLUMNS), -1, np.int64)
    to_class[CLASS_COLUMN] = np.arange(len(CLASSES))
    y = to_class[top]
    y[votes.sum(axis=1) == 0] = -1
    return y


def trainable(votes):
    """The faces FER+ trains on -> (N,) bool: some votes for the seven classes, and no unknown or
    not-a-face count as high as the top vote (a tie with them leaves the face out, unlike
    :func:`crowd_majority`'s first-column rule, which decides what a face is measured against)."""
    votes = np.asarray(votes)
    doubt = votes[:, VOTE_COLUMNS.index("unknown"):].max(axis=1)
    return (doubt < votes.max(axis=1)) & (class_votes(votes).sum(axis=1) > 0)


def votes_beside(data_path, split, n, path=None):
    """The FER+ votes of ``split`` for ``n`` faces: from ``path`` when given (a
    :class:`VotesError` if unusable), else from :func:`default_votes_path` when that file is
    there and has the split; None otherwise."""
    if path:
        return load_votes(path, split, n)
    try:
        return load_votes(default_votes_path(data_path), split, n)
    except VotesError:
        return None


def clear_expressions(votes):
    """Faces where at least :data:`CLEAR` of the ten agree on one emotion other than neutral -> (N,) bool."""
    c = class_votes(votes)
    emotional = np.delete(c, CLASSES.index("neutral"), axis=1)
    return emotional.max(axis=1) >= CLEAR


def calibration(probs, votes, bins=10):
    """Reliability of the top probability against the crowd share of the predicted class.

    For each face the confidence is its top probability and its "accuracy" the
    share of the seven classes' votes for that class; faces are binned by
    confidence. ECE = sum over bins of (faces in bin / N) * |mean share - mean confidence|.
    Returns ``{"ece", "bins": [{"lo", "hi", "count", "confidence", "share"}]}``.
    """
    conf = probs.max(axis=1)
    share = vote_distribution(votes)[np.arange(len(probs)), probs.argmax(axis=1)]
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    out, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        cnt = int(m.sum())
        c, s = (float(conf[m].mean()), float(share[m].mean())) if cnt else (0.0, 0.0)
        ece += cnt / max(len(probs), 1) * abs(s - c)
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "count": cnt, "confidence": c, "share": s})
    return {"ece": float(ece), "bins": out}


def crowd_report(probs, votes):
    """How predictions ``probs`` (N, 7) agree with the crowd's votes (N, 10).

    ``majority_accuracy`` over the faces with a majority (:func:`crowd_majority`),
    ``crowd_share`` (the mean share of the seven classes' votes that went to the predicted
    label, over the faces with votes for any of them),
    ``clear_named`` (the share of clear expressions, :func:`clear_expressions`, given
    their emotion) and ``ece`` with the reliability ``bins`` (:func:`calibration`).
    """
    from .metrics import report
    votes = np.asarray(votes)
    pred = probs.argmax(axis=1)
    voted = class_votes(votes).sum(axis=1) > 0      # faces some of whose votes name one of the classes
    y = crowd_majority(votes)
    keep = y >= 0
    maj = report(y[keep], pred[keep], list(CLASSES))
    clear = clear_expressions(votes)
    clear_label = np.delete(class_votes(votes), CLASSES.index("neutral"), axis=1).argmax(axis=1)
    clear_label = clear_label + (clear_label >= CLASSES.index("neutral"))
    share = vote_distribution(votes)[np.arange(len(votes)), pred]
    cal = calibration(probs[voted], votes[voted])
    return {"majority_accuracy": maj["accuracy"], "majority_macro_f1": maj["macro_f1"],
            "majority_faces": int(keep.sum()), "majority_per_class": maj["per_class"],
            "majority_confusion_matrix": maj["confusion_matrix"],
            "crowd_share": float(share[voted].mean()) if voted.any() else 0.0,
            "clear_named": float((pred[clear] == clear_label[clear]).mean()) if clear.any() else 0.0,
            "clear_faces": int(clear.sum()), "ece": cal["ece"], "reliability": cal["bins"]}


def format_crowd(c):
    """The crowd part of a report as text lines."""
    return (f"crowd majority {c['majority_accuracy'] * 100:.2f}% of {c['majority_faces']} faces "
            f"(macro-F1 {c['majority_macro_f1'] * 100:.2f}%)   crowd share {c['crowd_share']:.3f}   "
            f"clear expressions named {c['clear_named'] * 100:.2f}% of {c['clear_faces']}   "
            f"ECE {c['ece']:.3f}")


def plot_reliability(c, path, title="reliability against the crowd"):
    """Save the reliability diagram of a crowd report (confidence vs crowd share per bin) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..io import atomic_write
    bins = [b for b in c["reliability"] if b["count"]]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.bar([b["lo"] for b in bins], [b["share"] for b in bins], width=[b["hi"] - b["lo"] for b in bins],
           align="edge", edgecolor="k", alpha=0.7, label="crowd share of the predicted class")
    ax.plot([b["confidence"] for b in bins], [b["share"] for b in bins], "o-", color="C3", ms=3,
            label="share at the bin's mean confidence")
    ax.set_ylabel("share of people who gave the label"), ax.set_ylim(0, 1), ax.legend(loc="upper left")
    ax.set_title(f"{title} (ECE {c['ece']:.3f})")
    ax2.bar([b["lo"] for b in bins], [b["count"] for b in bins], width=[b["hi"] - b["lo"] for b in bins],
            align="edge", edgecolor="k", color="C7")
    ax2.set_xlabel("top probability (confidence)"), ax2.set_ylabel("faces"), ax2.set_xlim(0, 1)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100), suffix=".png")
    plt.close(fig)
