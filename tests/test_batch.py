"""``python -m minifer.batch`` and :func:`minifer.fer.batch_job.annotate`: photos and video on Ray
into Parquet, the same faces as ``predict``, resume, a killed worker, bad input.

One small Ray instance (2 CPUs) serves the whole module; each job starts two actors in it. The
shipped weights are used, so the labels are real ones.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from minifer.fer import batch_inputs, batch_units
from minifer.fer.batch_collect import Collector
from minifer.fer.batch_job import annotate
from minifer.fer.batch_store import Store, StoreError, read_dataset, UNITS_SCHEMA

# Ray Data's own DataContext copies warn about its deprecated fields
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

ROOT = Path(__file__).parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.jpg"
CAT = ROOT / "examples" / "images" / "chelsea_cat.jpg"
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
THREADS = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def ray_session():
    import ray
    for attempt in range(2):      # a busy machine can miss Ray's start-up deadlines once
        try:
            ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
                     log_to_driver=False, logging_level="ERROR")
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    yield ray
    ray.shutdown()


def write_clip(path, frames=20, fps=10.0):
    """A 320x240 MJPG clip of the astronaut's face drifting right, 1 px a frame."""
    import cv2
    face = cv2.resize(cv2.imread(str(ASTRONAUT)), (200, 200), interpolation=cv2.INTER_AREA)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    for i in range(frames):
        frame = np.full((240, 320, 3), 90, np.uint8)
        frame[20:220, 20 + i:220 + i] = face
        w.write(frame)
    w.release()
    return path


def predict_json(*args):
    r = subprocess.run([sys.executable, "-m", "minifer.predict", "--json", *map(str, args)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), **THREADS))
    assert r.returncode == 0, r.stderr
    return r.stdout


def read(out, name):
    return pd.read_parquet(Path(out) / name)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    shutil.copy(ASTRONAUT, d / "astronaut.jpg")
    shutil.copy(CAT, d / "cat.jpg")
    write_clip(d / "clip.avi")
    return d


# ------------------------------------------------------------------ with Ray

def test_photos_video_and_bad_files_into_parquet_with_predicts_faces(ray_session, media, tmp_path, capfd):
    """The command line on photos, a video and broken files: the faces, boxes and labels of
    ``predict --json``, one error row and one error line per bad file, exit 1; a rerun does nothing."""
    from minifer.batch import main
    bad = tmp_path / "bad"
    bad.mkdir()
    data, clip = ASTRONAUT.read_bytes(), (media / "clip.avi").read_bytes()
    (bad / "broken.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "truncated.jpg").write_bytes(data[:len(data) // 3])
    (bad / "cut.avi").write_bytes(clip[:int(len(clip) * 0.6)])
    (bad / "notes.md").write_text("not media\n")
    bad_args = [str(bad / n) for n in ("broken.jpg", "empty.jpg", "truncated.jpg", "cut.avi",
                                       "notes.md", "missing.png")]
    out = tmp_path / "out"
    rc = main(["--out", str(out), "--workers", "2", str(media), *bad_args])
    err = capfd.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if not line.startswith("minifer.batch: [")]
    errors = [line for line in lines if line.startswith("minifer.batch: error: ")]
    assert len(errors) == 6 and len(lines) == 7, err        # + the summary line (+ progress notes)
    assert "6 inputs failed" in err.splitlines()[-1] and str(out / "inputs") in err.splitlines()[-1]
    faces, inputs = read(out, "faces"), read(out, "inputs").set_index("source")
    assert len(inputs) == 9 and inputs.index.is_unique and list(faces.columns)[-7:] == CLASSES
    for a in bad_args:
        assert inputs.loc[a, "status"] == "error" and inputs.loc[a, "error"].startswith(a)
        assert sum(a in line for line in errors) == 1, (a, err)
    assert "truncated" in inputs.loc[str(bad / "cut.avi"), "error"]
    assert 0 < inputs.loc[str(bad / "cut.avi"), "frames"] < 20        # the frames before are kept

    for d in json.loads(predict_json(media / "astronaut.jpg", media / "cat.jpg")):
        got = faces[faces["source"] == d["file"]].sort_values("face")
        assert len(got) == len(d["faces"]) and inputs.loc[d["file"], "status"] == d["status"]
        for (_, row), f in zip(got.iterrows(), d["faces"]):
            assert [row.x, row.y, row.w, row.h] == f["box"] and row.label == f["label"]
            assert row.score == pytest.approx(f["score"], abs=1e-5)
            assert [row[c] for c in CLASSES] == pytest.approx(list(f["probabilities"].values()), abs=1e-5)
    frames = [json.loads(line) for line in predict_json("--video", media / "clip.avi").splitlines()]
    video = faces[faces["source"] == str(media / "clip.avi")].sort_values(["frame", "face"])
    want = [(d["frame"], d["time_s"], f["track_id"], f["box"], f["label"]) for d in frames for f in d["faces"]]
    assert len(want) == 20
    assert [(int(r.frame), r.time_s, int(r.track_id), [r.x, r.y, r.w, r.h], r.label)
            for r in video.itertuples()] == want
    row = inputs.loc[str(media / "clip.avi")]
    assert (row.kind, row.frames, row.faces, row.status) == ("video", 20, 20, "ok")
    meta = json.loads(pq.read_schema(next((out / "faces").glob("*.parquet"))).metadata[b"minifer"])
    assert len(meta["weights_sha256"]) == 64 and meta["minifer_version"]

    parts = sorted(p.name for p in (out / "faces").iterdir())
    rc = main(["--out", str(out), str(media), *bad_args])               # all finished: nothing to do
    last = capfd.readouterr().err.splitlines()[-1]
    assert rc == 1 and "0 inputs done (9 finished before)" in last and "6 failed in an earlier run" in last
    assert float(re.search(r"in ([\d.]+) s", last).group(1)) < 10, last
    assert sorted(p.name for p in (out / "faces").iterdir()) == parts


def test_interrupted_job_resumes_every_input_once(ray_session, media, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        shutil.copy(ASTRONAUT if i % 2 else CAT, photos / f"p{i}.jpg")
    out = tmp_path / "out"

    def stop_early(p):
        if p.done >= 2:
            raise KeyboardInterrupt

    # segments of 6 frames (0.6 s at 10 frames/s): the clip is 4 units of work
    with pytest.raises(KeyboardInterrupt):
        annotate([media / "clip.avi", photos], out, workers=2, segment_s=0.6, commit_s=0.01,
                 progress=stop_early)
    first = read(out, "inputs")
    assert 2 <= len(first) < 7
    s = annotate([media / "clip.avi", photos], out, workers=2, segment_s=0.6)
    assert s.skipped == len(first) and s.skipped + s.done == 7 and s.failed == 0
    inputs, faces = read(out, "inputs"), read(out, "faces")
    assert len(inputs) == 7 and inputs["source"].is_unique
    assert not faces.duplicated(["source", "frame", "face"]).any()
    per = faces.groupby("source").size()
    assert all(per.get(str(photos / f"p{i}.jpg"), 0) == i % 2 for i in range(6))
    video = faces[faces["kind"] == "video"].sort_values("frame")
    assert list(video["frame"]) == list(range(20))
    assert set(video["track_id"]) == {1}                  # one face, one id across 4 segments
    units = read_dataset(out / "_units", UNITS_SCHEMA).to_pandas()
    assert sorted(units.loc[units["kind"] == "video", "unit"]) == [0, 1, 2, 3]
    # the detector runs on the same frames as in one pass: same boxes there
    frames = [json.loads(line) for line in predict_json("--video", media / "clip.avi").splitlines()]
    for d in frames[::2]:
        r = video[video["frame"] == d["frame"]].iloc[0]
        assert [r.x, r.y, r.w, r.h] == d["faces"][0]["box"]


def test_a_killed_worker_is_replaced_and_nothing_is_lost(ray_session, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(24):
        shutil.copy(ASTRONAUT if i % 3 else CAT, photos / f"p{i:02d}.jpg")
    killed = []

    def kill_one(p):
        if not killed and p.workers:
            pid = int(sorted(p.workers)[0].rsplit(":", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    out = tmp_path / "out"
    s = annotate([photos], out, workers=2, progress=kill_one)
    assert killed and (s.done, s.failed) == (24, 0)
    inputs, faces = read(out, "inputs"), read(out, "faces")
    assert len(inputs) == 24 and inputs["source"].is_unique and set(inputs["status"]) == {"ok", "no_face"}
    assert len(faces) == 16 and faces["source"].is_unique
    workers = set(read_dataset(out / "_units", UNITS_SCHEMA).column("worker").to_pylist())
    assert len(workers) >= 3, workers                     # the replacement did some of the work


# ------------------------------------------------------------------ without Ray

def test_usage_errors_exit_2_without_starting_ray(tmp_path, capfd):
    from minifer.batch import main
    (tmp_path / "file").write_text("x")
    for argv in ([], [str(ASTRONAUT)], ["--out", str(tmp_path / "o"), "--segment-s", "0", str(ASTRONAUT)],
                 ["--out", str(tmp_path / "o"), "--weights", str(tmp_path / "none.npz"), str(ASTRONAUT)],
                 ["--out", str(tmp_path / "file"), str(ASTRONAUT)],
                 ["--out", str(tmp_path / "o"), "--address", "ray://127.0.0.1:10001", str(ASTRONAUT)]):
        assert main(argv) == 2, argv
        err = capfd.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("minifer.batch: error: "), (argv, err)
    code = "import sys, minifer.batch, minifer.predict; print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "[]", r.stderr


def test_expand_files_folders_globs_and_lists(tmp_path, monkeypatch):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for name in ("a/x.jpg", "a/sub/clip.MP4", "a/sub/noext", "a/readme.md", "a/.hidden.jpg", "b.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("# photos\nb.png\n\na/x.jpg\nnothing/*.jpg\n")
    files, problems = batch_inputs.expand([tmp_path / "a", str(tmp_path / "*.png"),
                                           tmp_path / "list.txt", tmp_path / "empty",
                                           tmp_path / "missing.jpg"])
    rel = [os.path.relpath(f, tmp_path) for f in files]
    assert rel == ["a/x.jpg", "a/sub/clip.MP4", "a/sub/noext", "b.png", "missing.jpg"]
    assert [(os.path.basename(a), r) for a, r in problems] == [
        ("*.jpg", "no file matches this pattern"), ("empty", "no photos or videos in this folder")]
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(f"{tmp_path / 'b.png'}\n"))
    assert batch_inputs.expand(["-"]) == ([str(tmp_path / "b.png")], [])


def test_probe_reads_the_content_not_the_name(media, tmp_path):
    shutil.copy(media / "clip.avi", tmp_path / "clip.jpg")       # a video named like a photo
    shutil.copy(ASTRONAUT, tmp_path / "photo")
    (tmp_path / "text.mp4").write_text("hello")
    kinds = {os.path.basename(p): batch_units.probe(str(tmp_path / p)) for p in ("clip.jpg", "photo", "text.mp4")}
    assert kinds["clip.jpg"]["kind"] == "video" and kinds["clip.jpg"]["frames"] == 20
    assert kinds["photo"]["kind"] == "photo"
    assert kinds["text.mp4"]["kind"] == "unknown" and "not a photo or a video" in kinds["text.mp4"]["error"]


def test_segments_cover_the_video_in_whole_detection_periods():
    assert batch_units.segments(300, 30.0, 10.0, 2) == [(0, None)]
    assert batch_units.segments(301, 30.0, 10.0, 2) == [(0, 300), (300, None)]
    cuts = batch_units.segments(1000, 29.97, 10.0, 2)
    assert cuts[0] == (0, 300) and cuts[-1][1] is None and cuts[-1][0] == 900
    assert all(b - a == 300 for a, b in cuts[:-1]) and all(a % 2 == 0 for a, _ in cuts)
    assert batch_units.segments(0, 30.0, 10.0) == [(0, None)] == batch_units.segments(50, 0.0, 10.0)


def test_store_drops_unfinished_commits_and_refuses_other_settings(tmp_path):
    out = tmp_path / "out"
    store = Store(out, {"segment_s": 10}, CLASSES)
    units = pa.Table.from_pylist([{"source": "a", "kind": "photo", "unit": 0, "n_units": 1, "frames": 1,
                                   "faces": 0, "status": "no_face", "seconds": 0.1,
                                   "last_tracks": [], "next_track": 1}], schema=UNITS_SCHEMA)
    faces, inputs, _ = Collector({}, CLASSES).take()
    store.commit(faces, inputs, units)
    with pytest.raises(StoreError, match="another job"):
        Store(out, {"segment_s": 10}, CLASSES)
    store.close()
    shutil.copy(out / "faces" / "part-000001.parquet", out / "faces" / "part-000002.parquet")
    (out / "inputs" / ".tmp-x.parquet").write_bytes(b"half")
    store = Store(out, {"segment_s": 10}, CLASSES)        # a killed job's half commit is gone
    assert sorted(p.name for p in (out / "faces").iterdir()) == ["part-000001.parquet"]
    assert [p.name for p in (out / "inputs").iterdir()] == ["part-000001.parquet"]
    assert store.next_part == 2
    store.close()
    with pytest.raises(StoreError, match="segment_s 10 .now 5"):
        Store(out, {"segment_s": 5}, CLASSES)


def _result(source, unit, n_units, start, frames, tracks):
    """A video segment's result: ``tracks`` is {frame: [(local track id, x)]}."""
    faces = [{"frame": f, "time_s": f / 10, "face": k, "x": x, "y": 10, "w": 40, "h": 40, "track": t,
              "label": "happy", "score": 0.9, "probs": [0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0]}
             for f, ts in sorted(tracks.items()) for k, (t, x) in enumerate(ts, 1)]
    return {"source": source, "kind": "video", "unit": unit, "n_units": n_units, "start": start,
            "frames": frames, "status": "ok", "error": None, "seconds": 1.0, "worker": "w:1",
            "faces": faces}


def test_collector_orders_segments_and_joins_tracks():
    c = Collector({"v": 100, "p": 10}, CLASSES)
    # segment 1 arrives first: it waits for segment 0
    c.add_rows([_result("v", 1, 3, 2, 2, {2: [(1, 12), (2, 200)], 3: [(1, 13), (2, 201)]})])
    assert c.ready() == 0 and c.missing() == {"v": [1], "p": []}
    c.add_rows([_result("v", 0, 3, 0, 2, {0: [(1, 10)], 1: [(1, 11)]})])
    faces, inputs, units = c.take()
    assert len(units) == 2 and len(inputs) == 0 and c.missing() == {"v": [0, 1], "p": []}
    assert faces.column("track_id").to_pylist() == [1, 1, 1, 2, 1, 2]   # 1 goes on, 2 is new
    c.add_rows([_result("v", 2, 3, 4, 1, {4: [(1, 201), (2, 14)]})])
    c.fail_missing("lost")                                                  # p never came back
    faces, inputs, units = c.take()
    assert faces.column("track_id").to_pylist() == [2, 1]
    assert inputs.to_pylist()[0]["frames"] == 5 and inputs.column("status").to_pylist() == ["ok", "error"]
    assert inputs.column("error").to_pylist() == [None, "p: lost"]
    assert c.missing() == {} and (c.inputs_done, c.failed, c.faces) == (2, 1, 8)
