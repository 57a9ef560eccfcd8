"""Drawing predictions: boxes and labels on photos (Pillow) and on video frames (OpenCV).

Each emotion has its colour in :data:`PALETTE`. Pillow and OpenCV are imported
by the functions that use them, so importing this module needs neither.
"""
import numpy as np

from .predictor import top_labels

# One colour per emotion (RGB), in the class order; reused cyclically.
PALETTE = [(230, 57, 70), (106, 153, 78), (155, 93, 229), (255, 190, 11),
           (58, 134, 255), (255, 112, 166), (200, 200, 200)]


def label_color(label, classes):
    """The RGB colour of class ``label`` (a name in ``classes``)."""
    return PALETTE[list(classes).index(label) % len(PALETTE)]


def annotate_image(img, faces, classes):
    """An RGB copy of PIL ``img`` with each face's box and top label drawn.

    ``faces``: dicts with ``box`` and ``probs``. Images with a short side
    under 192 px are enlarged (nearest neighbour) so the labels stay legible.
    """
    from PIL import Image, ImageDraw, ImageFont
    im = img.convert("RGB")
    k = 1
    if min(im.size) < 192:
        k = -(-192 // max(1, min(im.size)))
        im = im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(im)
    fsize = max(12, round(min(im.size) / 28))
    try:
        font = ImageFont.load_default(size=fsize)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    lw = max(2, round(min(im.size) / 250))
    for i, f in enumerate(faces, 1):
        x, y, w, h = (v * k for v in f["box"])
        label, p = top_labels(f["probs"], classes, 1)[0]
        color = label_color(label, classes)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=color, width=lw)
        text = f"{i}: {label} {p:.2f}" if len(faces) > 1 else f"{label} {p:.2f}"
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        tw, th = r - l + 2 * lw, b - t + 2 * lw
        ty = y - th if y - th >= 0 else min(y + h, im.height - th)
        tx = min(max(x, 0), max(0, im.width - tw))
        draw.rectangle([tx, ty, tx + tw, ty + th], fill=color)
        draw.text((tx + lw - l, ty + lw - t), text, fill=(0, 0, 0), font=font)
    return im


def explanation_pair(face, overlay_rgb, zoom=4):
    """A PIL image: the uint8 face and its heat-map overlay side by side, enlarged ``zoom`` times."""
    from PIL import Image
    pair = np.concatenate([np.repeat(face[..., None], 3, axis=2), overlay_rgb], axis=1)
    return Image.fromarray(pair).resize((pair.shape[1] * zoom, pair.shape[0] * zoom), Image.NEAREST)


def draw_tracks(frame, tracks, classes, fps=None):
    """Draw boxes, ``#id label p`` tags and an FPS counter on a BGR ``frame`` (in place).

    ``tracks``: ``[(track_id, (x, y, w, h), probs)]`` as from
    :meth:`minifer.fer.faces.FaceTracker.update`. Returns ``frame``.
    """
    import cv2
    h, w = frame.shape[:2]
    scale = max(0.45, min(h, w) / 900.0)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for tid, (x, y, bw, bh), p in tracks:
        label, prob = top_labels(p, classes, 1)[0]
        r, g, b = label_color(label, classes)
        color = (b, g, r)
        cv2.rectangle(frame, (x, y), (x + bw - 1, y + bh - 1), color, thick + 1)
        text = f"#{tid} {label} {prob:.2f}"
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(y + bh + th + 4, h - base - 1)
        cv2.rectangle(frame, (x, ty - th - 4), (x + tw + 4, ty + base), color, -1)
        cv2.putText(frame, text, (x + 2, ty - 2), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    if fps is not None:
        text = f"FPS {fps:.1f}"
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        cv2.rectangle(frame, (0, 0), (tw + 10, th + base + 10), (0, 0, 0), -1)
        cv2.putText(frame, text, (5, th + 5), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return frame
