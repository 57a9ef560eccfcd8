"""A trained emotion model, checked and ready: uint8 faces in, class probabilities out.

:func:`resolve_weights` picks the weights file (the one given, a model of
:mod:`minifer.fer.catalog` by name, else the catalog's default, shipped in the package);
:meth:`Predictor.load` loads it
and checks that it fits this application (the seven emotion classes, 48x48x1 input, gray
normalisation in its metadata, a forward pass that runs). Every problem is one
:class:`PredictorError` with a one-line message that names the file.
"""
import os
from pathlib import Path

import numpy as np

from ..io import WeightsError
from ..model import load_model
from . import catalog
from .classes import FACE_SIZE, NUM_CLASSES, input_side, model_input, normalization
from .tta import TTA_MODES, model_tta_predict, tta_views


class PredictorError(ValueError):
    """The weights cannot be used here: missing, corrupt, or made for another model."""


def default_weights():
    """The default model's weights file, shipped inside the package (:func:`catalog.model_path`)."""
    return resolve_weights()


def resolve_weights(path=None, model=None):
    """``path`` if given, else the file of the catalog's model ``model`` (default: the catalog's
    default) -> Path; :class:`PredictorError` for both at once, an unknown name or a missing file."""
    if path is not None and model is not None:
        raise PredictorError("give a weights file or a model name, not both")
    if path is not None:
        return Path(path)
    try:
        return catalog.model_path(model)
    except catalog.CatalogError as e:
        raise PredictorError(str(e)) from None


def top_labels(probs, classes, k=1):
    """``[(label, p), ...]`` for the ``k`` most probable classes (ties: lower index first)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]


def prediction_record(probs, classes):
    """``{"label", "score", "probabilities": {class: p}}`` of one face, rounded to 6 decimals:
    the face fields of the JSON output and of :func:`minifer.fer.recognizer.detect_emotions`."""
    label, p = top_labels(probs, classes, 1)[0]
    return {"label": label, "score": round(p, 6),
            "probabilities": {c: round(float(q), 6) for c, q in zip(classes, probs)}}


def _check_meta(meta, where):
    """Raise :class:`PredictorError` unless the metadata describes an emotion model."""
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != NUM_CLASSES:
        n = len(classes) if isinstance(classes, list) else "unknown"
        raise PredictorError(f"{where}: weights are for another model: {n} classes, "
                             f"this tool needs the {NUM_CLASSES} emotion classes")
    try:
        input_side(meta)
    except ValueError as e:
        raise PredictorError(f"{where}: weights are for another model: {e}") from None
    try:
        normalization(meta)
    except ValueError as e:
        raise PredictorError(f"{where}: weights have {e}") from None


class Predictor:
    """A loaded model plus its preprocessing: uint8 faces ``(N, 48, 48)`` -> probabilities.

    ``tta`` is one of :data:`minifer.fer.tta.TTA_MODES`; the model's own
    ``meta["preprocess"]`` normalises the faces (:func:`minifer.fer.classes.model_input`),
    and a model with a smaller input sees their central crop (or ten crops).
    ``size`` is the side of the face crops it takes (48).
    """

    def __init__(self, model, tta="none", batch_size=256):
        tta = tta or "none"
        if tta not in TTA_MODES:
            raise ValueError(f"unknown TTA mode {tta!r}; use one of {TTA_MODES}")
        normalization(model.meta)  # unusable preprocessing fails here, not on the first face
        self.model = model          # evaluation mode folds its batch-norms by itself (minifer.model)
        self.classes = [str(c) for c in model.meta["classes"]]
        self.size = FACE_SIZE
        self.input_side = input_side(model.meta)
        self.tta = tta
        self.batch_size = batch_size

    @classmethod
    def load(cls, path, tta="none"):
        """Load and check a weights file; any problem raises :class:`PredictorError`."""
        where = os.fspath(path)
        if not os.path.exists(where):
            raise PredictorError(f"{where}: weights file not found")
        if not os.path.isfile(where):
            raise PredictorError(f"{where}: weights path is not a file")
        try:
            model = load_model(where)
        except WeightsError as e:
            raise PredictorError(str(e)) from None
        except Exception as e:  # a broken architecture spec, bad values, ...
            raise PredictorError(f"{where}: cannot build the model from this weights file "
                                 f"({type(e).__name__}: {e})") from None
        _check_meta(model.meta, where)
        predictor = cls(model, tta=tta)
        try:  # one tiny forward pass: catches layer/shape mismatches early
            p = predictor.predict(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))
        except Exception as e:
            raise PredictorError(f"{where}: weights do not run on {FACE_SIZE}x{FACE_SIZE}x1 input "
                                 f"({type(e).__name__}: {e})") from None
        if p.shape != (1, NUM_CLASSES) or not np.all(np.isfinite(p)):
            raise PredictorError(f"{where}: weights are for another model: output shape "
                                 f"{p.shape[1:]}, expected ({NUM_CLASSES},)")
        return predictor

    def preprocess(self, faces):
        """uint8 ``(N, 48, 48)`` -> float32 ``(N, 48, 48, 1)`` model input."""
        return model_input(faces, self.model.meta)

    def plain_input(self, faces):
        """uint8 faces -> the one view the model sees without TTA: ``(N, s, s, 1)``, s its input side."""
        return tta_views(self.preprocess(faces), "none", size=self.input_side)[0]

    def predict(self, faces):
        """Class probabilities ``(N, K)`` (float64, rows sum to 1) for uint8 faces."""
        faces = np.asarray(faces)
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)))
        p = model_tta_predict(self.model, self.preprocess(faces), self.tta, self.batch_size)
        p = np.asarray(p, dtype=np.float64)
        return p / p.sum(axis=1, keepdims=True)
