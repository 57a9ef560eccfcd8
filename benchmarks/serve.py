"""Speed of ``python -m minifer.serve`` on this machine: round trips, concurrency, the live page.

    python benchmarks/serve.py [--requests 100] [--no-browser]

1. Starts the server on a free local port (default settings, shipped weights).
2. A 640x480 JPEG (the astronaut photo on a gray frame, one face) posted ``--requests`` times,
   one after another: the round trip (encode nothing, post, decode, detect, classify, JSON)
   as the client sees it, median and p95, for a single photo and for a client stream
   (``?client=``, the webcam page's way: 320 px detection and tracking).
3. 8 concurrent clients x 50 requests, each with its own picture and client id: errors, and
   whether every answer was for its own client's picture; the throughput.
4. The page in headless Chromium with a fake camera for 15 s: the frames per second it shows
   (``--screenshot PATH``: a picture of the page then, e.g. README's docs/img/live_demo.png).

Pause other work on the machine (e.g. ``kill -STOP`` a training run) while this runs.
"""
import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_serve import astronaut, jpeg, post, start_server, stop_server, write_y4m  # noqa: E402


def frame_640x480(x=80):
    frame = np.full((480, 640, 3), 100, np.uint8)
    frame[:, x:x + 480] = astronaut(480)
    return jpeg(frame)


def round_trips(url, body, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, answer = post(url, body)
        times.append(1e3 * (time.perf_counter() - t))
        assert status == 200 and len(answer["faces"]) == 1, answer
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--screenshot", metavar="PATH", help="save the page after 15 s as a PNG")
    a = ap.parse_args()
    proc, url = start_server()
    try:
        body = frame_640x480()
        round_trips(url + "/api/predict", body, 5)                      # warm-up
        for name, path in (("single photo", "/api/predict"), ("client stream", "/api/predict?client=bench")):
            t = round_trips(url + path, body, a.requests)
            print(f"640x480 JPEG round trip, {name}: median {statistics.median(t):.1f} ms, "
                  f"p95 {np.percentile(t, 95):.1f} ms over {a.requests} requests")

        frames = [frame_640x480(20 * c) for c in range(8)]

        def client(c):
            wrong = errors = 0
            for _ in range(50):
                status, answer = post(f"{url}/api/predict?client=c{c}", frames[c])
                if status != 200 or len(answer.get("faces", [])) != 1:
                    errors += 1
                    continue
                box = answer["faces"][0]["box"]
                wrong += abs(box[0] + box[2] / 2 - (20 * c + 240)) > 40
            return errors, wrong
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(8)))
        wall = time.perf_counter() - t
        print(f"8 clients x 50 requests: {sum(e for e, _ in results)} errors, "
              f"{sum(w for _, w in results)} answers for another client's picture; "
              f"{400 / wall:.1f} requests/s in all")

        if not a.no_browser:
            from chromium import FAKE_CAMERA, Chromium
            with tempfile.TemporaryDirectory() as tmp:
                clip = Path(tmp) / "camera.y4m"
                write_y4m(clip)
                browser = Chromium(*FAKE_CAMERA, f"--use-file-for-fake-video-capture={clip}")
                try:
                    browser.open(url + "/?camera")
                    browser.wait_for("document.querySelectorAll('#faces li.face').length", 60)
                    time.sleep(15)
                    print("the page after 15 s:", browser.evaluate("document.getElementById('stats').textContent"))
                    if a.screenshot:
                        browser.screenshot(a.screenshot)
                finally:
                    browser.close()
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
