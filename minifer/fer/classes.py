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


def input_side(meta):
    """The side of the square gray input a model takes (``meta["input_shape"]``): 48, or
    less for a model trained on random crops of the 48-px faces; ValueError otherwise."""
    shape = meta.get("input_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and shape[0] == shape[1]
            and shape[2] == 1 and 0 < shape[0] <= FACE_SIZE):
        raise ValueError(f"input shape {shape}, this tool needs [s, s, 1] with s <= {FACE_SIZE} "
                         f"({FACE_SIZE}x{FACE_SIZE} gray faces, or crops of them)")
    return int(shape[0])


def model_input(faces, meta):
    """uint8 faces ``(N, H, W)``, ``(N, H, W, 1)`` or one ``(H, W)`` -> float32 ``(N, H, W, 1)``,
    normalised as the model's metadata says (at the faces' size: a model with a smaller
    input sees crops of them, :mod:`minifer.fer.tta`)."""
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
