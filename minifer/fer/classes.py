"""The facts every part of the application shares: the emotion classes, the face
size the models take, and how uint8 faces become model input.

The normalisation is not a constant here: each weights file stores its own in
its metadata (``meta["preprocess"]``, written by training), and
:func:`model_input` reads it from there.
"""
import numpy as np

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASSES)
FACE_SIZE = 48                       # FER2013 faces are 48x48 gray
INPUT_SHAPE = (FACE_SIZE, FACE_SIZE, 1)


def gray_preprocess(mean, std):
    """The ``meta["preprocess"]`` entry for gray faces: ``(pixel / 255 - mean) / std``."""
    return {"color": "gray", "scale": 1 / 255, "mean": [float(mean)], "std": [float(std)]}


def normalization(meta):
    """``(scale, mean, std)`` as float32 from a model's metadata; ValueError if unusable."""
    pre = meta.get("preprocess")
    try:
        scale, mean, std = float(pre.get("scale", 1 / 255)), float(pre["mean"][0]), float(pre["std"][0])
        ok = pre.get("color", "gray") == "gray" and len(pre["mean"]) == 1 and len(pre["std"]) == 1
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        ok = False
    if not ok or not (std > 0 and scale > 0):
        raise ValueError("no usable 'preprocess' metadata (need color 'gray', one mean and one std > 0)")
    return np.float32(scale), np.float32(mean), np.float32(std)


def model_input(faces, meta):
    """uint8 faces ``(N, H, W)``, ``(N, H, W, 1)`` or one ``(H, W)`` -> float32 ``(N, H, W, 1)``,
    normalised as the model's metadata says."""
    scale, mean, std = normalization(meta)
    x = np.asarray(faces)
    if x.ndim == 2:
        x = x[None]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] != 1:
        raise ValueError(f"expected gray faces (N, H, W) or (N, H, W, 1), got shape {x.shape}")
    out = x.astype(np.float32)
    out *= scale
    out -= mean
    out /= std
    return out
