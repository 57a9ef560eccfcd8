"""Annotate an archive of photos and videos on Ray: :func:`annotate`, the work of
``python -m minifer.batch``.

    from minifer.fer.batch_job import annotate
    summary = annotate(["archive/"], "out/")          # a local Ray instance, one worker per CPU
    import pandas as pd
    faces = pd.read_parquet("out/faces")

The job: the inputs are expanded (:mod:`~minifer.fer.batch_inputs`) and those the output folder
has finished are skipped. One Ray Data job (:func:`minifer.fer.batch_ray.annotate`) then reads in
Ray tasks what each input is and cuts it into units, a photo or a segment of a video
(:func:`~minifer.fer.batch_units.plan_units`), names that say video first so that long work
starts first, and a pool of actors, each with one recognizer loaded, runs the units. The results
are put in order and tracked across segments (:class:`~minifer.fer.batch_collect.Collector`) and
committed to Parquet every ``commit_s`` seconds (:class:`~minifer.fer.batch_store.Store`). Units
whose worker process died more than ``retries`` times are run once more, each input on its own,
and if that fails too they get ``error`` rows: a file that crashes the decoder cannot stop the job.

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
from .batch_collect import Collector
from .batch_inputs import VIDEO_EXTENSIONS, expand
from .batch_store import Store
from .batch_units import PLAN_SCHEMA, file_sha256
from .faces import IMAGE_DETECT, THRESHOLD, VIDEO_DETECT
from .predictor import Predictor, resolve_weights

SEGMENT_S = 10.0        # seconds of video per unit of work
COMMIT_S = 10.0         # seconds between commits
PHOTOS_PER_TASK = 8     # photos per Ray task (fewer when there are few photos per worker)
PLAN_BLOCK = 64         # inputs per planning task
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


def _plan_blocks(skips, per_block):
    """Tables of :data:`~minifer.fer.batch_units.PLAN_SCHEMA`, ``per_block`` inputs each, for
    ``{source: units to skip}``; names that say video first, so that long work starts first."""
    files = sorted(skips, key=lambda f: os.path.splitext(f)[1].lower() not in VIDEO_EXTENSIONS)
    rows = [{"source": f, "skip": skips[f]} for f in files]
    return [pa.Table.from_pylist(rows[i:i + per_block], schema=PLAN_SCHEMA)
            for i in range(0, len(rows), per_block)]


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def annotate(inputs, out, *, address=None, workers=None, segment_s=SEGMENT_S, weights=None,
             model=None, tta="none", threshold=THRESHOLD, min_face=IMAGE_DETECT["min_face"],
             detect_every=VIDEO_DETECT["detect_every"], retries=3, commit_s=COMMIT_S,
             progress=None, on_error=None):
    """Find and classify the faces of ``inputs`` (files, folders, globs, lists of paths; see
    :func:`minifer.fer.batch_inputs.expand`) into the Parquet datasets under ``out``
    (:mod:`minifer.fer.batch_store`) -> :class:`Summary`.

    ``address``: a running Ray cluster (``"auto"``, ``"host:port"``; not ``"ray://..."``), else
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
    batch_ray.check_address(address)                 # before anything is written
    on_error = on_error or (lambda message: None)
    files, problems = expand(inputs)
    for arg, reason in problems:
        on_error(f"{arg}: {reason}")
    weights = None if weights is None else os.path.abspath(weights)
    path = resolve_weights(weights, model)
    predictor = Predictor.load(path, tta=tta)      # the weights are checked here, before Ray starts
    sha256 = file_sha256(path)
    store = Store(out, {"weights": os.path.basename(path), "weights_sha256": sha256, "tta": tta,
                        "threshold": threshold, "min_face": min_face,
                        "detect_every": detect_every, "segment_s": segment_s}, predictor.classes)
    try:
        finished = store.finished()
        todo = [f for f in files if f not in finished]
        committed = []                                   # the segments of unfinished videos
        if todo:
            units = store.units()
            committed = units.filter(pc.is_in(units["source"], pa.array(todo))).to_pylist()
        collector = Collector({f: _size(f) for f in todo}, predictor.classes, committed)
        if todo:
            job = _Job(store, collector, commit_s, progress, on_error, t0)
            job.run(address, workers, retries, (weights, model, sha256),
                    {"tta": tta, "threshold": threshold, "min_face": min_face,
                     "detect_every": detect_every},
                    {"segment_s": segment_s, "detect_every": detect_every})
    finally:
        store.close()
    return Summary(inputs=len(files), skipped=len(files) - len(todo), done=collector.inputs_done,
                   failed=collector.failed,
                   failed_before=sum(finished.get(f) == "error" for f in files),
                   problems=len(problems), faces=collector.faces, frames=collector.frames,
                   seconds=time.perf_counter() - t0, out=store.out)


class _Job:
    """The driver's side of one run on Ray: stream the results into the collector, commit every
    ``commit_s`` seconds, report progress and failed inputs."""

    def __init__(self, store, collector, commit_s, progress, on_error, t0):
        self.store, self.collector, self.commit_s = store, collector, commit_s
        self.progress, self.on_error, self.t0 = progress, on_error, t0
        self.state = Progress(inputs=len(collector.pending))
        self.last_commit = self.last_report = time.perf_counter()

    def run(self, address, workers, retries, weights, settings, plan):
        """Start or join Ray, run every unit not done yet, and commit (also when interrupted).
        ``weights``: (file, model name, sha256); ``settings``: the actors' options; ``plan``:
        :func:`~minifer.fer.batch_units.plan_units`' options."""
        from . import batch_ray
        started = batch_ray.start(address, cpus=max(backend.usable_cpus(), workers or 1))
        try:
            cpus = batch_ray.cluster_cpus()          # each worker needs one: no more than there are
            workers = min(workers or cpus, cpus)
            annotator = (*weights, settings)
            todo = self.collector.missing()
            per_task = max(1, min(PHOTOS_PER_TASK, math.ceil(len(todo) / (4 * workers))))
            self.consume(batch_ray.annotate(_plan_blocks(todo, PLAN_BLOCK),
                                            {**plan, "photos_per_task": per_task},
                                            annotator, workers, retries))
            lost = self.collector.missing()
            if lost:                  # each on its own, so one bad file cannot take others along
                self.consume(batch_ray.annotate(_plan_blocks(lost, 1),
                                                {**plan, "photos_per_task": 1},
                                                annotator, min(workers, len(lost)), retries))
            self.collector.fail_missing(f"its worker process died {retries + 1} times running it "
                                        "(see the Ray logs)")
        finally:
            try:
                self.commit(report=False)   # what is finished stays finished, also on Ctrl-C
            finally:
                if started:
                    batch_ray.stop()
        self.report()

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
