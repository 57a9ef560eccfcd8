"""Tests for ``python -m minifer.serve`` against a real server on a local port (shipped weights)."""
import io
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))   # tests/chromium.py

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.jpg"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args):
    """A server process and its base URL, once /api/health answers."""
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "minifer.serve", "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(url + "/api/health", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start in 30 s")


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.stderr.read()


@pytest.fixture(scope="module")
def server():
    proc, url = start_server("--max-mb", "2")
    yield url
    stderr = stop_server(proc)
    assert "Traceback" not in stderr, stderr


def post(url, data, ctype="image/jpeg"):
    """(status, JSON answer) of a POST."""
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def jpeg(array, quality=90):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def astronaut(size=None):
    img = Image.open(ASTRONAUT).convert("RGB")
    return np.asarray(img.resize((size, size)) if size else img)


def test_health_model_and_page(server):
    health = json.loads(urllib.request.urlopen(server + "/api/health").read())
    assert health["status"] == "ok"
    model = json.loads(urllib.request.urlopen(server + "/api/model").read())
    assert model["classes"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    page = urllib.request.urlopen(server + "/").read().decode()
    assert "getUserMedia" in page and 'id="faces"' in page
    assert "http://" not in page and "https://" not in page      # nothing fetched from elsewhere


def test_photo_with_two_faces(server):
    pair = np.full((512, 1024, 3), 120, np.uint8)
    pair[:, :512] = astronaut()
    pair[128:384, 640:896] = astronaut(256)
    status, answer = post(server + "/api/predict", jpeg(pair))
    assert status == 200, answer
    assert (answer["width"], answer["height"]) == (1024, 512) and answer["ms"] > 0
    faces = answer["faces"]
    assert [f["face"] for f in faces] == [1, 2] and faces[0]["box"][0] < 512 < faces[1]["box"][0]
    for f in faces:
        assert set(f) == {"face", "box", "label", "score", "probabilities"}
        assert sum(f["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    # the same photo as a multipart upload, and as a PNG
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg(pair) + f"\r\n--{boundary}--\r\n".encode()
    status, multi = post(server + "/api/predict", body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and [f["box"] for f in multi["faces"]] == [f["box"] for f in faces]
    buf = io.BytesIO()
    Image.fromarray(pair).save(buf, "PNG")
    assert len(post(server + "/api/predict", buf.getvalue(), "image/png")[1]["faces"]) == 2


def _bomb_png(w=40_000, h=40_000):
    """A small PNG whose header claims w x h pixels (1.6 G): a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_bad_input_is_a_4xx_json_error_and_the_server_goes_on(server):
    good = jpeg(astronaut(256))
    boundary = "b0undary"
    cases = [
        (b"this is not an image", "image/jpeg", 400, "not an image"),
        (good[: len(good) // 2], "image/jpeg", 400, "truncated"),
        (b"", "image/jpeg", 400, "empty body"),
        (os.urandom(3 * 2**20), "image/jpeg", 413, "limit"),            # over --max-mb 2
        (_bomb_png(), "image/png", 413, "decompression bomb"),
        (f"--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--{boundary}--\r\n".encode(),
         f"multipart/form-data; boundary={boundary}", 400, "'image'"),
    ]
    for body, ctype, want, words in cases:
        status, answer = post(server + "/api/predict", body, ctype)
        assert status == want and list(answer) == ["error"], (words, status, answer)
        assert words in answer["error"], answer
        assert post(server + "/api/predict", good)[0] == 200          # still serving
    status, answer = post(server + "/api/health", b"")
    assert status == 405 and "error" in answer
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server + "/nope")
    assert e.value.code == 404 and "error" in json.loads(e.value.read())


def test_eight_concurrent_clients_keep_their_own_tracks(server):
    # each client streams its own picture: the face at its own place in a 320x240 frame
    face = astronaut(160)
    frames = []
    for c in range(8):
        frame = np.full((240, 320, 3), 100, np.uint8)
        x = 20 * c
        frame[40:200, x:x + 160] = face
        frames.append(jpeg(frame))

    def stream(c):
        out = []
        for _ in range(50):
            status, answer = post(f"{server}/api/predict?client=c{c}", frames[c])
            out.append((status, answer))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(stream, range(8)))
    for c, answers in enumerate(results):
        assert all(status == 200 for status, _ in answers), c
        for _, answer in answers:
            (f,) = answer["faces"]
            assert f["track_id"] == 1                                   # its own tracker: one face
            cx = f["box"][0] + f["box"][2] / 2
            assert abs(cx - (20 * c + 80)) < 20, (c, f["box"])          # its own picture


def test_usage_errors_and_all_interfaces_warning():
    r = subprocess.run([sys.executable, "-m", "minifer.serve", "--port", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("minifer.serve: error:")
    r = subprocess.run([sys.executable, "-m", "minifer.serve", "--weights", "nope.npz"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "nope.npz" in r.stderr
    proc, url = start_server("--host", "0.0.0.0")
    port = url.rsplit(":", 1)[1]
    taken = subprocess.run([sys.executable, "-m", "minifer.serve", "--port", port], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    stderr = stop_server(proc)
    assert "warning: listening on all interfaces" in stderr
    assert taken.returncode == 2 and taken.stderr.splitlines() == [
        f"minifer.serve: error: cannot listen on 127.0.0.1:{port} (Address already in use)"]


def write_y4m(path, frames=30, width=640, height=480):
    """A fake-camera clip (YUV4MPEG2, 4:2:0) of the astronaut photo drifting right."""
    import cv2
    face = cv2.resize(cv2.imread(str(ASTRONAUT)), (height, height))
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = np.full((height, width, 3), 90, np.uint8)
            frame[:, 64 + i:64 + i + height] = face
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def test_the_page_labels_a_live_camera_in_a_real_browser(tmp_path):
    """Headless Chromium with a fake camera opens the page; labelled boxes appear in the face list.

    The screenshot goes to tmp_path, or to $MINIFER_SCREENSHOT (README's docs/img/live_demo.png)."""
    from chromium import FAKE_CAMERA, Chromium, find_chromium
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs chromium for the browser test (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    clip = tmp_path / "camera.y4m"
    write_y4m(clip)
    proc, url = start_server()
    browser = Chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={clip}")
    try:
        browser.open(url + "/?camera")
        labels = browser.wait_for(
            "[...document.querySelectorAll('#faces li.face')].map(li => li.dataset.label)", 90)
        # a few seconds of frames, so the frames/s shown (over the last 2 s) means something
        browser.wait_for("parseFloat(document.getElementById('stats').textContent) >= 5", 8)
        stats = browser.evaluate("document.getElementById('stats').textContent")
        shot = os.environ.get("MINIFER_SCREENSHOT") or str(tmp_path / "live_demo.png")
        browser.screenshot(shot)
    finally:
        browser.close()
        stderr = stop_server(proc)
    assert labels and len(labels) == 1 and labels[0] in (
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), (labels, stderr)
    assert "frames/s" in stats and "server" in stats
    assert Image.open(shot).size[0] > 600
