"""Tests for ``python -m minifer.predict`` (images and video), run as a subprocess.

The weights are a freshly initialised minivgg (fixed seed) written to a temp
folder: the labels are meaningless, but the plumbing (detection, crops,
batching, formats, exit codes, one-line errors, annotation) is what is tested.
The example photos (``examples/images``) have one face (astronaut) and none
(cat).
"""
import csv
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.jpg"
CAT = ROOT / "examples" / "images" / "chelsea_cat.jpg"
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
PREPROCESS = {"color": "gray", "scale": 1 / 255, "mean": [0.5], "std": [0.25]}
ERR = "minifer.predict: error: "


# One thread per library: the runs are tiny, and on a busy machine idle
# thread pools (Numba, OpenBLAS, OpenCV) only fight each other.
THREADS = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def subprocess_env():
    return dict(os.environ, PYTHONPATH=str(ROOT), **THREADS)


def run(*args, check_rc=None):
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "minifer.predict", *map(str, args)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    if check_rc is not None:
        assert r.returncode == check_rc, (r.returncode, r.stdout, r.stderr)
    return r


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith(ERR)]


def save_weights(path, **kw):
    import minifer as mf
    if kw.get("num_classes", len(CLASSES)) == len(CLASSES):
        kw.setdefault("classes", list(CLASSES))
    m = mf.zoo.minivgg(seed=0, **kw)
    m.meta["preprocess"] = dict(PREPROCESS)
    m.save(path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_weights(tmp_path_factory.mktemp("w") / "dev.npz")


@pytest.fixture(scope="module")
def face48(tmp_path_factory):
    """The astronaut's face, cut out like a FER image (48x48 gray PNG)."""
    from minifer.fer.align import square_crop
    from minifer.fer.images import load_image, to_gray_array
    gray = to_gray_array(load_image(ASTRONAUT))
    path = tmp_path_factory.mktemp("crop") / "face48.png"
    Image.fromarray(square_crop(gray, (177, 67, 95, 95))).save(path)
    return path


def png_header_only(path, w, h):
    """A PNG whose header claims ``w x h`` pixels (a decompression bomb)."""
    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------ images

def test_json_good_and_bad_inputs(weights, tmp_path):
    bad = {
        "missing": tmp_path / "missing.jpg",
        "text": tmp_path / "notes.txt",
        "truncated": tmp_path / "truncated.jpg",
        "empty": tmp_path / "empty.jpg",
        "bomb": png_header_only(tmp_path / "bomb.png", 30000, 30000),
    }
    bad["text"].write_text("not an image\n")
    data = ASTRONAUT.read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["empty"].write_bytes(b"")
    r = run("--weights", weights, "--json", ASTRONAUT, bad["missing"], CAT, bad["text"],
            bad["truncated"], bad["empty"], bad["bomb"], check_rc=1)

    errs = error_lines(r.stderr)
    assert len(errs) == len(bad), r.stderr
    for p in bad.values():  # exactly one one-line error per bad file
        assert sum(str(p) in l for l in errs) == 1, (p, r.stderr)
    assert any("too large" in l for l in errs if "bomb" in l)
    assert len(r.stderr.splitlines()) == len(bad) + 1  # + the cat's "no face found" note
    assert "no face found" in r.stderr

    doc = json.loads(r.stdout)
    by_file = {d["file"]: d for d in doc}
    assert len(doc) == 7
    astro = by_file[str(ASTRONAUT)]
    assert astro["status"] == "ok" and astro["error"] is None and len(astro["faces"]) == 1
    face = astro["faces"][0]
    x, y, w, h = face["box"]
    assert abs(x - 177) < 15 and abs(y - 67) < 15 and 70 < w < 130
    assert list(face["probabilities"]) == CLASSES
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    assert by_file[str(CAT)]["status"] == "no_face" and by_file[str(CAT)]["faces"] == []
    for p in bad.values():
        d = by_file[str(p)]
        assert d["status"] == "error" and d["faces"] == [] and str(p) in d["error"]


def test_csv_output_file_and_annotate_folder(weights, tmp_path):
    photos = tmp_path / "photos"
    (photos / "people").mkdir(parents=True)
    (photos / "people" / "astronaut.jpg").write_bytes(ASTRONAUT.read_bytes())
    (photos / "cat.jpg").write_bytes(CAT.read_bytes())
    out, ann = tmp_path / "faces.csv", tmp_path / "annotated"
    r = run("--weights", weights, "--csv", "-o", out, "--annotate", ann, photos, check_rc=0)
    assert r.stdout == "" and error_lines(r.stderr) == []
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["file", "face", "x", "y", "w", "h", "label", *CLASSES]
    assert len(rows) == 2  # one face; the cat has no row
    row = rows[1]
    assert row[0].endswith("astronaut.jpg") and row[1] == "1" and row[6] in CLASSES
    assert sum(float(v) for v in row[7:]) == pytest.approx(1.0, abs=1e-4)
    # the folder is mirrored; every input gets a readable copy
    for rel in ("people/astronaut.jpg", "cat.jpg"):
        with Image.open(ann / rel) as im:
            im.load()
            assert im.size == Image.open(photos / rel).size
    assert not [p for p in ann.rglob(".tmp-*")]


def test_table_top_k_and_annotate_one_file(weights, tmp_path):
    out = tmp_path / "astro_annotated.png"
    r = run("--weights", weights, "--top-k", "3", "--annotate", out, ASTRONAUT, check_rc=0)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("file") and "top 3" in lines[0]
    assert len(lines) == 2 and str(ASTRONAUT) in lines[1]
    assert sum(lines[1].count(c + " ") for c in CLASSES) == 3
    with Image.open(out) as im:
        a = np.asarray(im.convert("RGB"))
    orig = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    assert a.shape == orig.shape
    assert np.abs(a.astype(int) - orig).max() > 100  # something was drawn


def test_face_crop_is_classified_whole_without_opencv(weights, face48):
    """A 48x48 face crop skips detection, and cv2 is never imported for it."""
    code = ("import sys; from minifer.predict import main; "
            f"rc = main(['--weights', {str(weights)!r}, '--json', {str(face48)!r}]); "
            "assert 'cv2' not in sys.modules, 'cv2 imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=subprocess_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    (d,) = json.loads(r.stdout)
    assert d["whole_image"] is True and d["faces"][0]["box"] == [0, 0, 48, 48]
    assert sum(d["faces"][0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------ weights and usage

@pytest.mark.parametrize("kind", ["missing", "corrupt", "three_classes", "rgb_input"])
def test_bad_weights_exit_2(kind, tmp_path):
    w = tmp_path / f"{kind}.npz"
    if kind == "corrupt":
        w.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "three_classes":
        save_weights(w, num_classes=3)
    elif kind == "rgb_input":
        save_weights(w, in_channels=3)
    r = run("--weights", w, ASTRONAUT, check_rc=2)
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(ERR + str(w))
    if kind in ("three_classes", "rgb_input"):
        assert "another model" in r.stderr


def test_usage_errors_are_one_line(weights, capsys):
    from minifer.predict import main
    for argv in ([], ["--bogus", str(ASTRONAUT)], ["--top-k", "0", str(ASTRONAUT)],
                 ["--smooth", "0.3", str(ASTRONAUT)], ["--video", "x.mp4", str(ASTRONAUT)],
                 ["--video", "x.mp4", "--annotate", "out.png"],
                 ["--annotate", "out.notanimage", str(ASTRONAUT)],
                 ["--threshold", "1", str(ASTRONAUT)], ["--min-face", "0", str(ASTRONAUT)],
                 ["--detect-every", "2", str(ASTRONAUT)], ["--video", "0", "--detect-every", "0"]):
        assert main(["--weights", str(weights), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith(ERR), (argv, err)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--video" in out and "exit status" in out


def test_detection_defaults_for_photos_and_video():
    """Photos: search at 640 px plus full size for 20 px faces; video: 320 px, detection on every
    2nd frame (the 10 ms frame budget, benchmarks/realtime.py); explicit options win."""
    from minifer.fer.faces import IMAGE_DETECT, VIDEO_DETECT
    from minifer.predict import _check_args, build_parser
    for argv, want in (([str(ASTRONAUT)], (640, 20, None)), (["--video", "0"], (320, None, 2)),
                       (["--video", "0", "--detect-size", "480", "--detect-every", "1",
                         "--min-face", "30"], (480, 30, 1))):
        args = build_parser().parse_args(argv)
        _check_args(args)
        assert (args.detect_size, args.min_face, args.detect_every) == want, argv
    assert IMAGE_DETECT["detect_size"] == 640 and VIDEO_DETECT["detect_every"] == 2


def test_default_weights_missing_is_usage_error(monkeypatch, tmp_path):
    from minifer.fer import catalog, predictor
    (tmp_path / "models.json").write_text(json.dumps(
        {"default": "m", "models": {"m": {"file": "nope.npz", "where": "package", "labels": "fer2013",
                                          "about": "gone"}}}))
    monkeypatch.setattr(catalog, "weights_dir", lambda: tmp_path)
    with pytest.raises(predictor.PredictorError, match="model 'm' .*nope.npz.* is missing"):
        predictor.resolve_weights(None)


def test_expand_inputs_mirrors_and_dedups(tmp_path):
    from minifer.fer.photos import expand_inputs
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    for p in ("a/x.jpg", "a/sub/y.gif", "b/x.jpg"):
        (tmp_path / p).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    items, empty = expand_inputs([str(tmp_path / "a")], out)
    assert [d.relative_to(out).as_posix() for _, d in items] == ["x.jpg", "sub/y.png"]
    items, empty = expand_inputs([str(tmp_path / "a/x.jpg"), str(tmp_path / "b/x.jpg"),
                                  str(tmp_path / "empty")], out)
    assert [d.relative_to(out).as_posix() for _, d in items] == ["x.jpg", "x-2.jpg"]
    assert [a for a, _ in empty] == [str(tmp_path / "empty")]
    items, _ = expand_inputs([str(tmp_path / "a/x.jpg")], tmp_path / "one.png")
    assert items[0][1] == tmp_path / "one.png"
    items, _ = expand_inputs([str(tmp_path / "a/x.jpg")], str(tmp_path / "new") + "/")
    assert items[0][1] == tmp_path / "new" / "x.jpg"


# ------------------------------------------------------------------ video

def test_video_annotate_and_csv(weights, tmp_path):
    cv2 = pytest.importorskip("cv2")
    face = cv2.resize(cv2.imread(str(ASTRONAUT)), (240, 240), interpolation=cv2.INTER_AREA)
    src = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    assert w.isOpened()
    for i in range(10):  # the face drifts right by 3 px a frame
        frame = np.full((240, 320, 3), 90, np.uint8)
        frame[:, 20 + 3 * i:260 + 3 * i] = face
        w.write(frame)
    w.release()
    out, rows_path = tmp_path / "out.mp4", tmp_path / "rows.csv"
    r = run("--weights", weights, "--video", src, "--annotate", out, "--csv", "-o", rows_path,
            "--smooth", "0.5", check_rc=0)
    assert error_lines(r.stderr) == [] and "10 frames" in r.stderr
    rows = list(csv.DictReader(io.StringIO(rows_path.read_text())))
    assert list(rows[0]) == ["frame", "time_s", "track_id", "x", "y", "w", "h", "label", *CLASSES]
    frames = {int(row["frame"]) for row in rows}
    assert len(frames) >= 8 and frames <= set(range(10))
    assert float(rows[-1]["time_s"]) == pytest.approx(int(rows[-1]["frame"]) / 10.0)
    ones = [row for row in rows if row["track_id"] == "1"]
    assert len(ones) >= 8  # the same face keeps its id
    for row in rows:
        assert sum(float(row[c]) for c in CLASSES) == pytest.approx(1.0, abs=1e-4)
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 10

    # --max-frames, JSON Lines on stdout, and a source that is not a video
    r = run("--weights", weights, "--video", src, "--json", "--max-frames", "2", "-q",
            check_rc=0)
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert [d["frame"] for d in lines] == [0, 1] and r.stderr == ""
    notvideo = tmp_path / "notes.txt"
    notvideo.write_text("hello\n")
    r = run("--weights", weights, "--video", notvideo, check_rc=1)
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(ERR + str(notvideo))


def test_explain_writes_gradcam_pictures(weights, tmp_path):
    run("--weights", weights, "--explain", tmp_path / "cams", ASTRONAUT, check_rc=0)
    files = sorted((tmp_path / "cams").iterdir())
    assert [f.name for f in files] == ["astronaut_face1_gradcam.png"]
    with Image.open(files[0]) as im:
        assert im.size == (96 * 4, 48 * 4)


def _write_clip(path, frames, fourcc="MJPG"):
    cv2 = pytest.importorskip("cv2")
    face = cv2.resize(cv2.imread(str(ASTRONAUT)), (240, 240), interpolation=cv2.INTER_AREA)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (320, 240))
    for i in range(frames):
        frame = np.full((240, 320, 3), 90, np.uint8)
        frame[:, 20 + 2 * i:260 + 2 * i] = face
        w.write(frame)
    w.release()
    return path


def test_video_truncated_keeps_the_frames_before(weights, tmp_path):
    clip = _write_clip(tmp_path / "clip.avi", 30)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:int(len(data) * 0.6)])         # the last 40 % of the file is lost
    rows, annotated = tmp_path / "rows.jsonl", tmp_path / "out.mp4"
    r = run("--weights", weights, "--video", cut, "--json", "-o", rows, "--annotate", annotated,
            check_rc=1)
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and errors[0].startswith(ERR + str(cut)) and "truncated" in errors[0]
    got = [json.loads(line) for line in rows.read_text().splitlines()]
    assert 10 <= len(got) < 30 and [d["frame"] for d in got] == list(range(len(got)))
    assert f"the {len(got)} frames before it" in errors[0]
    assert annotated.is_file()                           # the annotated frames are kept too
    r = run("--weights", weights, "--video", clip, "--json", "-o", rows, check_rc=0)
    assert len(rows.read_text().splitlines()) == 30      # the whole file: no error


def test_video_sources_that_cannot_be_read(weights, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(50_000))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    for source, reason in ((garbage, "cannot open video file"), (empty, "cannot open video file"),
                           ("7", "cannot open camera"), (tmp_path / "none.mp4", "no such file"),
                           (tmp_path, "is a directory")):
        r = run("--weights", weights, "--video", source, check_rc=1)
        assert r.stderr.splitlines() == [f"{ERR}{source}: {reason}"] or \
            (len(r.stderr.splitlines()) == 1 and reason in r.stderr), (source, r.stderr)


def test_video_detect_every_tracks_one_face(weights, tmp_path):
    clip = _write_clip(tmp_path / "clip.avi", 12)
    for every in ("1", "3"):
        r = run("--weights", weights, "--video", clip, "--json", "--detect-every", every,
                check_rc=0)
        got = [json.loads(line) for line in r.stdout.splitlines()]
        assert [len(d["faces"]) for d in got] == [1] * 12
        assert {f["track_id"] for d in got for f in d["faces"]} == {1}
        detected = 12 if every == "1" else 4
        assert f"12 frames ({detected} detected)" in r.stderr
