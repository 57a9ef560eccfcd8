"""Per-frame time of the PyPI package ``fer`` on a video clip, for comparison with minifer.

Run with the side virtual environment's python, not the project's (this does not import
minifer):

    /work/fer-venv/bin/python benchmarks/fer_compare.py CLIP.mp4 [--frames 300] [--keras]

The clip is read with OpenCV, one frame at a time. Each frame goes through fer's usual
per-frame API: ``FER(mtcnn=False)``, so OpenCV's Haar cascade finds faces, then
``detect_emotions(frame)`` on the BGR frame. By default fer 25.x classifies with its quantized
TFLite model; with ``--keras`` it uses the Keras ``emotion_model.hdf5`` instead.
The time for each frame is the wall time of decoding it plus running fer on it
(time.perf_counter). The first frame is a warm-up and is not counted. ``--frames`` caps the
number of frames read, the warm-up included: on the 300-frame clip from
``benchmarks/realtime.py --keep clip.mp4`` that gives 299 timed frames, as realtime.py does.

The script refuses all network connections and reports any that fer tries to make: fer's
model weights come inside its wheel (fer/data/).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")

_net_attempts = []
_orig_connect = socket.socket.connect


def _no_network(self, address):
    """Record the connection attempt and refuse it: everything has to be local."""
    _net_attempts.append(address)
    raise OSError(f"fer_compare.py: network access refused ({address!r})")


socket.socket.connect = _no_network

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import fer  # noqa: E402

try:
    from fer import FER  # noqa: E402
except ImportError:          # the 25.10.3 wheel's fer/__init__.py does not export FER
    from fer.fer import FER  # noqa: E402


def percentile(values, q):
    """The q-th percentile (linear interpolation, as numpy's default)."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def main():
    """Time fer on the clip and print one line of results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip", help="video file readable by OpenCV")
    ap.add_argument("--frames", type=int, default=300,
                    help="frames to read at most, the warm-up frame included (default 300)")
    ap.add_argument("--keras", action="store_true",
                    help="classify with fer's Keras .hdf5 model instead of its TFLite one")
    a = ap.parse_args()

    data = os.path.join(os.path.dirname(fer.__file__), "data")
    shipped = sorted(os.listdir(data)) if os.path.isdir(data) else []
    print(f"fer {fer.__version__}, data shipped in the wheel: {', '.join(shipped) or 'NONE'}")
    print(f"tensorflow {tf.__version__}, opencv {cv2.__version__}, numpy {np.__version__}")

    det = FER(mtcnn=False, use_tflite=not a.keras)
    cap = cv2.VideoCapture(a.clip)
    if not cap.isOpened():
        sys.exit(f"cannot open {a.clip}")

    ok, frame = cap.read()                            # warm-up, not counted
    if not ok:
        sys.exit(f"no frame in {a.clip}")
    det.detect_emotions(frame)

    times_ms, with_face = [], 0
    for _ in range(a.frames - 1):
        t = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        faces = det.detect_emotions(frame)
        times_ms.append(1e3 * (time.perf_counter() - t))
        with_face += bool(faces)
    cap.release()

    if not times_ms:
        sys.exit("the clip has only the warm-up frame: nothing timed")
    model = "keras hdf5" if a.keras else "tflite"
    print(f"fer {fer.__version__} ({model}, haar): {len(times_ms)} frames, "
          f"{with_face} with >=1 face, median {statistics.median(times_ms):.2f} ms/frame, "
          f"p95 {percentile(times_ms, 95):.2f} ms/frame (decode + fer, warm-up frame excluded)")
    if _net_attempts:
        print(f"WARNING: fer tried to reach the network {len(_net_attempts)} time(s): "
              f"{_net_attempts}")


if __name__ == "__main__":
    main()
