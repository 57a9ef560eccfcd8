"""Annotate an archive of photos and videos on Ray: :func:`annotate`, the work of ``python -m minifer.batch``.

    from minifer.fer.batch_job import annotate
    summary = annotate(["archive/"], "out/")          # a local Ray instance, one worker per CPU
    import pandas as pd
    faces = pd.read_parquet("out/faces")

The job: the inputs are expanded (:mod:`~minifer.fer.batch_inputs`); those the output folder
has finished are skipped; Ray tasks read what each of the others is (:func:`minifer.fer.batch_ray.probe`);
each photo is one unit of work and each video is cut into segments (:func:`~minifer.fer.batch_units.segments`);
a pool of actors, each with one recognizer loaded, runs the units, long ones first
(:func:`minifer.fer.batch_ray.annotate`); the results are put in order and tracked across
segments (:class:`~minifer.fer.batch_collect.Collector`) and committed to Parquet every
``commit_s`` seconds (:class:`~minifer.fer.batch_store.Store`). A unit whose worker process died
more than ``retries`` times is run once more on its own, and if that fails too its input gets an
``error`` row: a file that crashes the decoder cannot stop the job.

A killed job loses the units in flight, the ones finished since the last commit, and the video
segments waiting for an earlier segment of their video; rerun it with the same output folder and
it does only what is left.
"""
import math
import os
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .. import backend
from .batch_collect import Collector, error_result
from .batch_inputs import expand
from .batch_store import Store
from .batch_units import UNIT_SCHEMA, file_sha256, segments
from .faces import IMAGE_DETECT, THRESHOLD, VIDEO_DETECT
from .predictor import Predictor, resolve_weights

SEGMENT_S = 10.0        # seconds of video per unit of work
COMMIT_S = 10.0         # seconds between commits
PHOTOS_PER_TASK = 8     # photos per Ray task (fewer when there are few photos per worker)
PROGRESS_S = 0.5        # seconds between progress reports


@dataclass
class Progress:
    """Where a job stands: inputs of this run done and failed, frames and faces so far,
    seconds since it started, and the share of the work done (by the size of the files)."""
    inputs: int = 0
    done: int = 0
    failed: int = 0
    frames: int = 0
    faces: int = 0
    elapsed: float = 0.0
    fraction: float = 0.0
    workers: set = field(default_factory=set)

    def eta(self):
        """Seconds left, from the share done so far (None before anything is done)."""
        if self.fraction <= 0:
            return None
        return self.elapsed * (1 - self.fraction) / self.fraction


@dataclass
class Summary:
    """What a job did: ``inputs`` named, ``skipped`` (finished by an earlier run), ``done`` and
    ``failed`` in this run, ``failed_before`` (skipped inputs that an earlier run found bad),
    ``problems`` (arguments that named nothing), the faces and frames it found, its seconds, and
    the output folder."""
    inputs: int
    skipped: int
    done: int
    failed: int
    failed_before: int
    problems: int
    faces: int
    frames: int
    seconds: float
    out: str

    @property
    def ok(self):
        """True when every input succeeded (exit status 0)."""
        return self.failed == 0 and self.failed_before == 0 and self.problems == 0


def _plan(probes, segment_s, detect_every):
    """``(units, inputs, errors)``: the unit rows to run, ``{source: (kind, size, n_units)}`` of
    every input, and the error results of the inputs that are neither photo nor video."""
    units, inputs, errors = [], {}, []
    for p in probes:
        src = p["source"]
        if p["kind"] == "photo":
            units.append({"source": src, "kind": "photo", "unit": 0, "n_units": 1, "start": None,
                          "stop": None, "frames_announced": None})
            inputs[src] = ("photo", p["size"], 1)
        elif p["kind"] == "video":
            cuts = segments(p["frames"], p["fps"], segment_s, detect_every)
            units += [{"source": src, "kind": "video", "unit": k, "n_units": len(cuts),
                       "start": s, "stop": e, "frames_announced": p["frames"]}
                      for k, (s, e) in enumerate(cuts)]
            inputs[src] = ("video", p["size"], len(cuts))
        else:
            inputs[src] = ("unknown", p["size"], 1)
            errors.append(error_result(src, p["error"]))
    return units, inputs, errors


def _blocks(units, workers):
    """One Ray task per video segment, long work first; photos in groups of up to
    :data:`PHOTOS_PER_TASK`, fewer when there are few photos per worker."""
    segs = [u for u in units if u["kind"] == "video"]
    photos = [u for u in units if u["kind"] == "photo"]
    per = max(1, min(PHOTOS_PER_TASK, math.ceil(len(photos) / (4 * workers))))
    groups = [[u] for u in segs] + [photos[i:i + per] for i in range(0, len(photos), per)]
    return [pa.Table.from_pylist(g, schema=UNIT_SCHEMA) for g in groups]


def _committed(store, todo):
    """The ``_units`` rows already written for the inputs in ``todo``."""
    units = store.units()
    return [u for u in units.to_pylist() if u["source"] in todo]


def annotate(inputs, out, *, address=None, workers=None, segment_s=SEGMENT_S, weights=None,
             model=None, tta="none", threshold=THRESHOLD, min_face=IMAGE_DETECT["min_face"],
             detect_every=VIDEO_DETECT["detect_every"], retries=3, commit_s=COMMIT_S,
             progress=None, on_error=None):
    """Find and classify the faces of ``inputs`` (files, folders, globs, lists of paths; see
    :func:`minifer.fer.batch_inputs.expand`) into the Parquet datasets under ``out``
    (:mod:`minifer.fer.batch_store`) -> :class:`Summary`.

    ``address``: a running Ray cluster (``"auto"``, ``"host:port"``, ``"ray://host:port"``), else
    a local instance (or the Ray session this process already has). ``workers``: actors (default
    one per CPU). ``weights``/``model``, ``tta``, ``threshold``, ``min_face`` as for photos in
    ``predict``; ``detect_every`` as ``predict --video``. ``progress(Progress)`` is called about
    every half second; ``on_error(message)`` once per input that failed or argument that named
    nothing. Raises :class:`~minifer.fer.predictor.PredictorError` (weights),
    :class:`~minifer.fer.batch_store.StoreError` (output folder) and
    :class:`~minifer.fer.batch_ray.RayError` (Ray).
    """
    from . import batch_ray
    t0 = time.perf_counter()
    on_error = on_error or (lambda message: None)
    files, problems = expand(inputs)
    for arg, reason in problems:
        on_error(f"{arg}: {reason}")
    weights = None if weights is None else os.path.abspath(weights)
    path = resolve_weights(weights, model)
    predictor = Predictor.load(path, tta=tta)      # the weights are checked here, before Ray starts
    sha256 = file_sha256(path)
    settings = {"weights": os.path.basename(path), "weights_sha256": sha256, "tta": tta,
                "threshold": threshold, "min_face": min_face, "detect_every": detect_every,
                "segment_s": segment_s}
    store = Store(out, settings, predictor.classes)
    summary = dict(inputs=len(files), skipped=0, done=0, failed=0, failed_before=0,
                   problems=len(problems), faces=0, frames=0, out=store.out)
    started, run = False, None
    try:
        finished = store.finished()
        todo = [f for f in files if f not in finished]
        summary["skipped"] = len(files) - len(todo)
        summary["failed_before"] = sum(finished.get(f) == "error" for f in files)
        if todo:
            started = batch_ray.start(address, cpus=backend.usable_cpus())
            cpus = batch_ray.cluster_cpus()
            workers = workers or cpus
            probes = {}
            for table in batch_ray.probe(todo, cpus):
                probes.update((p["source"], p) for p in table.to_pylist())
            for src in todo:     # a file whose probe crashed its worker every time
                probes.setdefault(src, {"source": src, "kind": "unknown", "size": None,
                                        "error": f"{src}: reading it crashed the worker"})
            units, info, errors = _plan([probes[s] for s in todo], segment_s, detect_every)
            committed = _committed(store, set(todo))
            collector = Collector(info, predictor.classes, committed)
            collector.add_rows(errors)
            done = {(u["source"], u["unit"]) for u in committed}
            units = [u for u in units if (u["source"], u["unit"]) not in done]
            run = _Run(store, collector, len(todo), commit_s, progress, on_error, t0)
            args = (weights, model, sha256, {"tta": tta, "threshold": threshold,
                                             "min_face": min_face, "detect_every": detect_every,
                                             "threads": max(1, cpus // min(workers, cpus))})
            run.consume(batch_ray.annotate(_blocks(units, workers), args, workers, retries))
            lost = set(collector.missing())
            if lost:                  # each on its own, so one bad file cannot take others along
                again = [pa.Table.from_pylist([u], schema=UNIT_SCHEMA) for u in units
                         if (u["source"], u["unit"]) in lost]
                run.consume(batch_ray.annotate(again, args, min(workers, len(again)), retries))
            collector.add_rows([error_result(s, f"{s}: its worker process died {retries + 1} times "
                                                f"running unit {u} (see the Ray logs)",
                                             info[s][0], u, info[s][2])
                                for s, u in collector.missing()])
            run.commit()
            summary.update(done=collector.inputs_done, failed=collector.failed,
                           faces=collector.faces, frames=collector.frames)
    finally:
        try:
            if run is not None:
                run.commit(report=False)   # what is finished stays finished, also on Ctrl-C
        finally:
            store.close()
            if started:
                batch_ray.stop()
    return Summary(seconds=time.perf_counter() - t0, **summary)


class _Run:
    """The driver's loop over result tables: collect, commit every ``commit_s`` seconds, report."""

    def __init__(self, store, collector, inputs, commit_s, progress, on_error, t0):
        self.store, self.collector, self.commit_s = store, collector, commit_s
        self.progress, self.on_error, self.t0 = progress, on_error, t0
        self.state = Progress(inputs=inputs)
        self.last_commit = self.last_report = time.perf_counter()

    def consume(self, tables):
        try:
            for table in tables:
                self._add(table)
        finally:
            tables.close()       # an interrupted stream stops its Ray Data job now

    def _add(self, table):
        self.collector.add(table)
        self.state.workers.update(w for w in table.column("worker").to_pylist() if w)
        now = time.perf_counter()
        if now - self.last_commit >= self.commit_s:
            self.commit()
        if now - self.last_report >= PROGRESS_S:
            self.report()

    def commit(self, report=True):
        c = self.collector
        if c.ready():
            faces, inputs, units = c.take()
            self.store.commit(faces, inputs, units)
            for row in inputs.filter(pc.equal(inputs["status"], "error")).to_pylist():
                self.on_error(row["error"])
        self.last_commit = time.perf_counter()
        if report:
            self.report()

    def report(self):
        c, s = self.collector, self.state
        s.done, s.failed, s.frames, s.faces = c.inputs_done, c.failed, c.frames, c.faces
        s.elapsed = time.perf_counter() - self.t0
        s.fraction = min(1.0, c.done_size / c.total_size)
        self.last_report = time.perf_counter()
        if self.progress is not None:
            self.progress(s)
