"""A headless Chromium driven over the DevTools protocol through a pipe (no extra package).

``--remote-debugging-pipe`` makes Chromium read JSON commands, each ending in a NUL byte, from
file descriptor 3 and write its answers and events the same way to descriptor 4.
"""
import base64
import json
import os
import shutil
import subprocess
import time

FAKE_CAMERA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def find_chromium():
    """The Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser; :meth:`open` a page, :meth:`evaluate` JavaScript, :meth:`screenshot`."""

    def __init__(self, *flags, width=1100, height=700):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        os.set_inheritable(to_browser_r, True)
        os.set_inheritable(from_browser_w, True)
        args = [find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--window-size={width},{height}",
                "--no-first-run", "--disable-extensions", *flags, "about:blank"]

        def fds():  # the child's descriptors 3 and 4 are the pipe ends
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)
        self.proc = subprocess.Popen(args, preexec_fn=fds, pass_fds=(3, 4),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf, self._id, self.session = b"", 0, None

    def send(self, method, session=None, **params):
        """Send one command and return its result (raises RuntimeError on a protocol error)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def open(self, url):
        """Open ``url`` in a new tab and attach to it."""
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression):
        """The JSON value of a JavaScript expression in the page."""
        r = self.send("Runtime.evaluate", self.session, expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=60.0):
        """Poll ``expression`` until it is truthy; its value, or None after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        return None

    def screenshot(self, path):
        """Save a PNG of the page."""
        data = self.send("Page.captureScreenshot", self.session, format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_browser)
        os.close(self._from_browser)
