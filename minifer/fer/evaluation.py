"""Evaluate a model on labelled faces: the metrics report plus loss and speed.

    from minifer import load_model
    from minifer.fer.evaluation import evaluate
    r = evaluate(load_model("minifer/fer/weights/minivgg_fer.npz"), x_uint8, y, tta="flip")
    print(r["accuracy"], r["macro_f1"], r["images_per_s"])

The faces are normalised as the model's own metadata says
(:func:`minifer.fer.classes.model_input`), so the same call works for every
weights file; ``tta`` is one of :data:`minifer.fer.tta.TTA_MODES`. With ``votes``
(FER+'s ten votes per face, :mod:`minifer.fer.crowd`) the report also holds ``crowd``:
accuracy against the crowd majority, crowd share, clear expressions named, calibration.
"""
import time

import numpy as np

from .classes import CLASSES, model_input
from .crowd import crowd_report
from .metrics import report
from .tta import model_tta_predict


def evaluate(model, x, y, tta="none", batch_size=256, votes=None):
    """Report for uint8 faces ``x`` (N,48,48) and labels ``y``, with the model's own preprocessing.

    Adds the mean cross-entropy ``loss``, ``images``, ``seconds``, ``images_per_s``
    and ``tta`` to :func:`minifer.fer.metrics.report`, and ``crowd``
    (:func:`minifer.fer.crowd.crowd_report`) when ``votes`` (N, 10) are given. Raises
    ValueError when the model has no usable ``preprocess`` metadata.
    """
    xin = model_input(x, model.meta)
    t = time.perf_counter()
    probs = model_tta_predict(model, xin, tta, batch_size)
    dt = time.perf_counter() - t
    r = report(y, probs.argmax(axis=1), model.meta.get("classes", list(CLASSES)))
    loss = -np.log(np.maximum(probs[np.arange(len(y)), y], 1e-12)).mean() if len(y) else 0.0
    r.update(loss=float(loss), images=int(len(y)), seconds=dt, images_per_s=len(y) / max(dt, 1e-9), tta=tta)
    if votes is not None:
        r["crowd"] = crowd_report(probs, votes)
    return r
