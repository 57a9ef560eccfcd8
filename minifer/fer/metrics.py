"""Classification metrics from labels and predictions (NumPy only)."""
import numpy as np


def confusion_matrix(y_true, y_pred, k):
    """C[i, j] = number of samples of true class i predicted as j."""
    return np.bincount(np.asarray(y_true, np.int64) * k + np.asarray(y_pred, np.int64),
                       minlength=k * k).reshape(k, k)


def report(y_true, y_pred, classes):
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    prec = tp / np.maximum(cm.sum(axis=0), 1)
    rec = tp / np.maximum(cm.sum(axis=1), 1)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    per_class = {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                     "support": int(cm[i].sum())} for i, c in enumerate(classes)}
    return {"accuracy": float(tp.sum() / max(cm.sum(), 1)), "macro_f1": float(f1.mean()),
            "per_class": per_class, "confusion_matrix": cm.tolist(), "classes": list(classes)}


def format_report(r):
    """The report as a readable text table."""
    classes = r["classes"]
    lines = [f"accuracy {r['accuracy'] * 100:.2f}%   macro-F1 {r['macro_f1'] * 100:.2f}%", "",
             f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for c in classes:
        p = r["per_class"][c]
        lines.append(f"{c:<10}{p['precision']:>10.3f}{p['recall']:>10.3f}{p['f1']:>10.3f}{p['support']:>9}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * 10 + "".join(f"{c[:7]:>8}" for c in classes)]
    for c, row in zip(classes, r["confusion_matrix"]):
        lines.append(f"{c:<10}" + "".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


def plot_confusion(r, path, title="confusion matrix"):
    """Save the row-normalised confusion matrix as a PNG (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..io import atomic_write
    cm = np.asarray(r["confusion_matrix"], np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    classes = r["classes"]
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (accuracy {r['accuracy'] * 100:.1f}%)")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), suffix=".png")
    plt.close(fig)
