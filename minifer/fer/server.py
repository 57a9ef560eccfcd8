"""The live camera page and JSON API behind ``python -m minifer.serve`` (Starlette, served by uvicorn).

    GET  /              the page (``static/index.html``: webcam, photos, live boxes; works offline)
    POST /api/predict   image bytes (any ``image/*`` type) or a multipart field ``image``
                        -> {"faces": [{"face", "box", "label", "score", "probabilities"}],
                            "width", "height", "ms"}; with ``?client=ID`` each face also has a
                        ``track_id`` and its probabilities are smoothed over that client's frames
    GET  /api/health    {"status": "ok", "version"}
    GET  /api/model     the classes and the weights' metadata

Bad input is a 4xx JSON ``{"error": "..."}``: 400 not an image or a corrupt one, 413 a body
over ``max_bytes`` or a decompression bomb. The model, the detector and the trackers are used
by one request at a time (a lock); each client id has its own :class:`FaceTracker`, so
concurrent clients never mix their faces.
"""
import io
import threading
import time
from collections import OrderedDict
from importlib import resources

from .._version import __version__
from .faces import THRESHOLD, VIDEO_DETECT, FaceFinder
from .images import ImageError, ImageTooLarge, decode_image, to_gray_array
from .predictor import prediction_record
from .recognizer import EmotionRecognizer
from .tracking import FaceTracker

MAX_BYTES = 20 * 2**20      # the largest request body accepted (bytes)
MAX_CLIENTS = 256           # trackers kept, least recently used dropped first
DRAIN_BYTES = 64 * 2**20    # an oversized body is read (and dropped) up to this much further


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx) and a one-line message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class EmotionService:
    """The model, the face finders and one tracker per client id; thread-safe.

    A single photo goes through an :class:`~minifer.fer.recognizer.EmotionRecognizer` (searched
    like ``predict`` searches photos); a client's stream of webcam frames is searched like
    ``predict --video`` (320 px), with the client's own tracker.
    """

    def __init__(self, weights=None, threshold=THRESHOLD, max_clients=MAX_CLIENTS, model=None):
        self.recognizer = EmotionRecognizer(weights, model=model, threshold=threshold)
        self.predictor = self.recognizer.predictor
        video = {k: v for k, v in VIDEO_DETECT.items() if k != "detect_every"}
        self.stream = FaceFinder(guess_crops=False, threshold=threshold, **video)
        self.trackers = OrderedDict()
        self.max_clients = max_clients
        self.lock = threading.Lock()

    def model_info(self):
        """The classes and the weights' metadata (JSON-ready)."""
        meta = self.predictor.model.meta
        keep = ("name", "classes", "input_shape", "preprocess", "minifer_version")
        return {"classes": self.predictor.classes, "tta": self.predictor.tta,
                **{k: meta[k] for k in keep if k in meta}}

    def _tracker(self, client):
        tracker = self.trackers.pop(client, None) or FaceTracker()
        self.trackers[client] = tracker          # most recently used last
        while len(self.trackers) > self.max_clients:
            self.trackers.popitem(last=False)
        return tracker

    def predict(self, data, client=None):
        """Image bytes -> the answer dict (:class:`RequestError` for bad input)."""
        if not data:
            raise RequestError(400, "empty body: send the image bytes or a multipart field 'image'")
        try:
            gray = to_gray_array(decode_image(io.BytesIO(data), "image"))
        except ImageError as e:
            raise RequestError(413 if isinstance(e, ImageTooLarge) else 400, str(e)) from None
        with self.lock:
            t0 = time.perf_counter()
            if client is None:
                faces = self.recognizer.detect_emotions(gray)
            else:
                found, crops, _ = self.stream.find(gray)
                probs = self.predictor.predict(crops)
                tracks = self._tracker(client).update(found, list(probs))
                faces = [{"face": i, "box": list(box), "track_id": tid,
                          **prediction_record(p, self.predictor.classes)}
                         for i, (tid, box, p) in enumerate(tracks, 1)]
            ms = 1e3 * (time.perf_counter() - t0)
        return {"faces": faces, "width": int(gray.shape[1]), "height": int(gray.shape[0]),
                "ms": round(ms, 2)}


async def _read_body(request, limit):
    """The request body; over ``limit`` bytes, 413. The rest of an oversized body is still read
    and dropped (up to :data:`DRAIN_BYTES` more), so the client gets the 413, not a reset connection."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > limit + DRAIN_BYTES:
            break
    if size > limit:
        raise RequestError(413, f"body is over the {limit} byte limit")
    return b"".join(chunks)


async def _image_bytes(request, limit):
    body = await _read_body(request, limit)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return body
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    async def stream():
        yield body
    form = await MultiPartParser(Headers(raw=request.headers.raw), stream()).parse()
    part = form.get("image")
    if part is None or isinstance(part, str):
        raise RequestError(400, "multipart body without a file field 'image'")
    return await part.read()


def make_app(service, max_bytes=MAX_BYTES):
    """The Starlette application around an :class:`EmotionService`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    page = resources.files(__package__).joinpath("static", "index.html").read_text(encoding="utf-8")

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    async def index(request):
        return HTMLResponse(page)

    async def health(request):
        return JSONResponse({"status": "ok", "version": __version__})

    async def model(request):
        return JSONResponse(service.model_info())

    async def predict(request):
        client = request.query_params.get("client") or None
        try:
            data = await _image_bytes(request, max_bytes)
            return JSONResponse(await run_in_threadpool(service.predict, data, client))
        except RequestError as e:
            return error(e.status, str(e))
        except Exception as e:  # a malformed multipart body, ...
            return error(400, f"bad request ({type(e).__name__}: {' '.join(str(e).split())[:200]})")

    async def not_found(request, exc):
        return error(404, f"no such path: {request.url.path}")

    async def not_allowed(request, exc):
        return error(405, f"{request.method} not allowed on {request.url.path}")

    routes = [Route("/", index), Route("/api/health", health), Route("/api/model", model),
              Route("/api/predict", predict, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
