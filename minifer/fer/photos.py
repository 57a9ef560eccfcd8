"""Photos: expand files and folders into inputs, and recognise the faces of one photo.

:func:`analyze_image` reads a photo upright and in gray, finds its faces
(:class:`minifer.fer.faces.FaceFinder`), classifies them in one batch and
optionally writes an annotated copy and Grad-CAM pictures. A problem with one
photo is an :class:`InputError` with a one-line message that names it.
"""
import os
from pathlib import Path

from .augment import center_crop
from .drawing import annotate_image, explanation_pair
from .explain import grad_cam, overlay
from .images import ImageError, iter_image_paths, load_image, save_image_atomic, to_gray_array

# Annotated copies keep the input's extension when Pillow writes it well (else .png).
ANNOTATE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class InputError(Exception):
    """One input could not be processed (the message names it)."""


def annotated_name(path):
    """File name of the annotated copy of ``path``."""
    p = Path(path)
    return p.name if p.suffix.lower() in ANNOTATE_EXTS else p.stem + ".png"


def names_folder(path):
    """True for an existing folder or a path written with a trailing slash."""
    return os.path.isdir(path) or str(path).endswith(("/", os.sep))


def check_annotate(inputs, annotate):
    """``ValueError`` unless ``annotate`` suits ``inputs`` (see :func:`expand_inputs`): one
    image file takes an image file name or a folder; several images or a folder take a folder.

    The message says what is wrong, e.g. ``"for several images needs a folder, not a file"``.
    """
    single_file = len(inputs) == 1 and not os.path.isdir(inputs[0])
    if single_file and not names_folder(annotate):
        from PIL import Image
        if os.path.splitext(annotate)[1].lower() not in Image.registered_extensions():
            raise ValueError("for one image needs an image file name (.jpg, .png, ...) or a folder")
    elif os.path.exists(annotate) and not os.path.isdir(annotate):
        raise ValueError("for several images needs a folder, not a file")


def expand_inputs(args, annotate=None):
    """Expand files/folders to ``[(path, annotate_dest_or_None)]`` and a list of
    ``(arg, reason)`` for folders with no images.

    ``annotate`` is a file path when the only input is one file (or an existing
    folder to put it in); otherwise a folder: one folder input is mirrored
    into it directly, several inputs go to ``OUT/<folder name>/...`` and
    ``OUT/<file name>``. Clashing names get ``-2``, ``-3``, ... suffixes.
    """
    items, empty, used = [], [], set()
    single_file = len(args) == 1 and not os.path.isdir(args[0])
    out = Path(annotate) if annotate is not None else None
    out_is_dir = annotate is not None and names_folder(annotate)

    def dest_for(rel):
        d = out / rel
        base, n = d, 2
        while str(d) in used:
            d = base.with_name(f"{base.stem}-{n}{base.suffix}")
            n += 1
        used.add(str(d))
        return d

    for a in args:
        if os.path.isdir(a):
            found = list(iter_image_paths(a, recursive=True))
            if not found:
                empty.append((a, "no image files found in this folder"))
            for p in found:
                dest = None
                if out is not None:
                    rel = p.relative_to(a).parent / annotated_name(p)
                    if len(args) > 1:
                        rel = Path(Path(os.path.abspath(a)).name or "root") / rel
                    dest = dest_for(rel)
                items.append((p, dest))
        else:
            p = Path(a)
            dest = None
            if out is not None:
                dest = out if single_file and not out_is_dir else dest_for(annotated_name(p))
            items.append((p, dest))
    return items, empty


def analyze_image(path, finder, predictor, annotate_dest=None, explain_dir=None):
    """Find and classify the faces of one photo -> a result dict.

    ``{"file", "status": "ok" | "no_face", "whole", "faces": [{"face", "box",
    "probs"}], "error": None}``. Writes the annotated copy to ``annotate_dest``
    and Grad-CAM pictures into ``explain_dir`` when given. Raises :class:`InputError`.
    """
    try:
        img = load_image(path)
    except ImageError as e:
        raise InputError(str(e)) from None
    gray = to_gray_array(img)
    found, crops, whole = finder.find(gray)
    probs = predictor.predict(crops)
    faces = [{"face": i + 1, "box": [int(v) for v in f.box], "probs": probs[i]}
             for i, f in enumerate(found)]
    if annotate_dest is not None:
        if os.path.exists(annotate_dest) and os.path.samefile(annotate_dest, path):
            raise InputError(f"{path}: refusing to overwrite the input with the annotated image")
        try:
            save_image_atomic(annotate_image(img, faces, predictor.classes), annotate_dest)
        except (ImageError, OSError, ValueError) as e:
            msg = getattr(e, "strerror", None) or e
            raise InputError(f"{path}: cannot write annotated image {annotate_dest} ({msg})") from None
    if explain_dir is not None and faces:
        save_explanations(path, crops, predictor, explain_dir)
    return {"file": str(path), "status": "ok" if faces else "no_face", "whole": whole,
            "faces": faces, "error": None}


def save_explanations(path, crops, predictor, folder):
    """Write ``<stem>_face<i>_gradcam.png``: each face, as the model sees it, next to its Grad-CAM overlay."""
    x = predictor.plain_input(crops)                      # what the model sees: (N, s, s, 1)
    cams = grad_cam(predictor.model, x)
    faces = center_crop(crops[..., None], x.shape[1])[..., 0].astype(crops.dtype)
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    os.makedirs(folder, exist_ok=True)
    for i, (face, cam) in enumerate(zip(faces, cams), 1):
        save_image_atomic(explanation_pair(face, overlay(face, cam)),
                          os.path.join(folder, f"{stem}_face{i}_gradcam.png"))
