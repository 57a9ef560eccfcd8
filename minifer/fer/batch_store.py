"""The output of ``python -m minifer.batch``: a folder of Parquet datasets that grows by commits.

    DIR/faces/part-000001.parquet     one row per face          pandas.read_parquet(DIR / "faces")
    DIR/inputs/part-000001.parquet    one row per finished input
    DIR/_units/part-000001.parquet    one row per finished unit (a photo, a video segment)
    DIR/job.json                      the settings the results depend on

A commit writes one part of each, every file atomically (:func:`minifer.io.atomic_write`), the
``_units`` part last: it is the commit's record. A ``faces`` or ``inputs`` part without its
``_units`` part belongs to a commit that a killed job did not finish; :class:`Store` deletes it
when it opens the folder, so every unit's rows are there once or not at all. Readers skip the
``_units`` folder and the temporary ``.tmp-*`` files (pyarrow ignores names starting with ``_``
and ``.``). Every part carries the job's settings, the weights' sha256 and the minifer version in
its Parquet metadata under the key ``minifer``. One job at a time may write to a folder
(``DIR/.lock``).
"""
import fcntl
import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from .._version import __version__
from ..io import atomic_write

PARTS = ("faces", "inputs", "_units")
PART_NAME = re.compile(r"^part-(\d+)\.parquet$")
META_KEY = b"minifer"

INPUTS_SCHEMA = pa.schema([("source", pa.string()), ("kind", pa.string()), ("size", pa.int64()),
                           ("frames", pa.int64()), ("faces", pa.int64()), ("status", pa.string()),
                           ("error", pa.string()), ("seconds", pa.float64())])
BOX_TYPE = pa.struct([("track", pa.int32()), ("x", pa.int32()), ("y", pa.int32()),
                      ("w", pa.int32()), ("h", pa.int32())])
UNITS_SCHEMA = pa.schema([("source", pa.string()), ("kind", pa.string()), ("unit", pa.int32()),
                          ("n_units", pa.int32()), ("start", pa.int64()), ("frames", pa.int64()),
                          ("faces", pa.int64()), ("status", pa.string()), ("error", pa.string()),
                          ("seconds", pa.float64()), ("worker", pa.string()),
                          ("last_tracks", pa.list_(BOX_TYPE)), ("next_track", pa.int32())])


class StoreError(Exception):
    """The output folder cannot be used: in use by another job, written with other settings,
    or not writable (one-line message)."""


def faces_schema(classes):
    """The ``faces`` table: source, kind, frame and time_s (video), face (1, 2, ... in the photo
    or frame), box x, y, w, h, track_id (video, the same face across frames), label, score and one
    probability column per class."""
    return pa.schema([("source", pa.string()), ("kind", pa.string()), ("frame", pa.int64()),
                      ("time_s", pa.float64()), ("face", pa.int32()), ("x", pa.int32()),
                      ("y", pa.int32()), ("w", pa.int32()), ("h", pa.int32()),
                      ("track_id", pa.int32()), ("label", pa.string()), ("score", pa.float32())]
                     + [(c, pa.float32()) for c in classes])


def _parts(folder):
    """``{number: path}`` of the parts in ``folder``."""
    if not os.path.isdir(folder):
        return {}
    found = {}
    for name in os.listdir(folder):
        m = PART_NAME.match(name)
        if m:
            found[int(m.group(1))] = os.path.join(folder, name)
    return found


def read_dataset(folder, schema, columns=None):
    """All committed parts of one dataset as one table (empty, of ``schema``, if there are none)."""
    parts = [p for _, p in sorted(_parts(folder).items())]
    if not parts:
        return schema.empty_table() if columns is None else \
            pa.schema([schema.field(c) for c in columns]).empty_table()
    return pq.ParquetDataset(parts).read(columns=columns)


class Store:
    """An output folder, opened for one job: locked, checked against the job's ``settings`` (a
    JSON-able dict, e.g. the weights' sha256 and the options that change results) and cleared of
    unfinished commits. :meth:`commit` adds one part to each dataset; :meth:`close` unlocks.
    """

    def __init__(self, out, settings, classes):
        self.out = os.path.abspath(out)
        self.settings = settings
        self.faces_schema = faces_schema(classes)
        try:
            os.makedirs(self.out, exist_ok=True)
            self._lock = open(os.path.join(self.out, ".lock"), "a")
        except OSError as e:
            raise StoreError(f"{out}: cannot write here ({e.strerror or e})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise StoreError(f"{out}: another job is writing to this folder") from None
        try:
            self._check_settings()
            self._drop_unfinished()
        except BaseException:
            self.close()
            raise
        self.meta = {META_KEY: json.dumps({"minifer_version": __version__, **settings}).encode()}
        self.next_part = 1 + max((n for d in PARTS for n in _parts(self._dir(d))), default=0)

    def _dir(self, name):
        return os.path.join(self.out, name)

    def _check_settings(self):
        path = os.path.join(self.out, "job.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                before = json.load(f)
            changed = sorted(k for k in set(before) | set(self.settings)
                             if before.get(k) != self.settings.get(k))
            if changed:
                what = ", ".join(f"{k} {before.get(k)!r} (now {self.settings.get(k)!r})"
                                 for k in changed)
                raise StoreError(f"{self.out}: written with other settings: {what}; use the same "
                                 "options to resume, or another output folder")
            return
        text = json.dumps(self.settings, indent=1, sort_keys=True) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))

    def _drop_unfinished(self):
        """Delete the parts of commits without their ``_units`` part, and temporary files."""
        done = set(_parts(self._dir("_units")))
        for d in PARTS:
            folder = self._dir(d)
            os.makedirs(folder, exist_ok=True)
            for n, path in _parts(folder).items():
                if n not in done:
                    os.unlink(path)
            for name in os.listdir(folder):
                if name.startswith(".tmp-"):
                    os.unlink(os.path.join(folder, name))

    def finished(self):
        """``{source: status}`` of the inputs with a row in ``inputs``."""
        t = read_dataset(self._dir("inputs"), INPUTS_SCHEMA, ["source", "status"])
        return dict(zip(t.column("source").to_pylist(), t.column("status").to_pylist()))

    def units(self):
        """The ``_units`` table: every unit committed so far."""
        return read_dataset(self._dir("_units"), UNITS_SCHEMA)

    def commit(self, faces, inputs, units):
        """Write one part of each dataset (tables of :func:`faces_schema`, :data:`INPUTS_SCHEMA`,
        :data:`UNITS_SCHEMA`), ``_units`` last."""
        name = f"part-{self.next_part:06d}.parquet"
        for d, table in zip(PARTS, (faces, inputs, units)):
            table = table.replace_schema_metadata(self.meta)
            atomic_write(os.path.join(self._dir(d), name), lambda f, t=table: pq.write_table(t, f),
                         suffix=".parquet")
        self.next_part += 1

    def close(self):
        """Release the folder."""
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
