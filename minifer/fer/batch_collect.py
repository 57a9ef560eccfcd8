"""The driver's side of ``python -m minifer.batch``: unit results in, rows to commit out.

Results come back from the workers in any order. :class:`Collector` takes each input's units in
order (a video segment that arrives before the one before it waits), gives a video's faces track
ids that hold across segments, and when all units of an input are in, its row for ``inputs``.
:meth:`Collector.take` hands over what is ready: the ``faces``, ``inputs`` and ``_units`` rows of
one commit (:class:`minifer.fer.batch_store.Store`).

Each segment is tracked on its own, its ids starting at 1
(:class:`~minifer.fer.tracking.FaceTracker`). At a boundary, the faces on a segment's first frame
are matched by box overlap (greedy, IoU >= :data:`LINK_IOU`, as the tracker matches) to the faces
on the previous segment's last frame and keep their ids; other faces get new ids, in the order
they appear. A one-segment video keeps the tracker's ids, the ids of ``predict --video``.
"""
import numpy as np
import pyarrow as pa

from .batch_store import INPUTS_SCHEMA, UNITS_SCHEMA, faces_schema
from .batch_units import FACE_TYPE, RESULT_SCHEMA
from .tracking import FaceTracker, iou

LINK_IOU = FaceTracker().iou_threshold


def error_result(source, message, kind="unknown", unit=0, n_units=1, start=None):
    """A result row (a dict of :data:`~minifer.fer.batch_units.RESULT_SCHEMA`) for a unit that
    could not be run: status ``error`` with the one-line ``message``."""
    return {"source": source, "kind": kind, "unit": unit, "n_units": n_units, "start": start,
            "frames": 0, "status": "error", "error": message, "seconds": 0.0, "worker": None,
            "faces": []}


class _Input:
    """One input whose units are being taken: counts so far, and the tracks of its last frame."""

    def __init__(self, kind, size, n_units):
        self.kind, self.size, self.n_units = kind, size, n_units
        self.next = 0                     # the next unit to take
        self.held = {}                    # unit -> (row, faces) that came before its turn
        self.frames = self.faces = 0
        self.seconds = 0.0
        self.error = None
        self.last_frame = None            # the last decoded frame of the last unit taken
        self.last_tracks = []             # [(track id, box)] on that frame
        self.next_track = 1

    def resume(self, units):
        """Take up the committed units of this input (rows of the ``_units`` table, in order)."""
        for u in units:
            self.next = u["unit"] + 1
            self.frames += u["frames"]
            self.faces += u["faces"]
            self.seconds += u["seconds"]
            self.error = self.error or u["error"]
            self.last_frame = (u["start"] or 0) + u["frames"] - 1
            self.last_tracks = [(b["track"], (b["x"], b["y"], b["w"], b["h"]))
                                for b in u["last_tracks"]]
            self.next_track = u["next_track"]


class Collector:
    """Unit results in (:meth:`add`), rows to commit out (:meth:`take`).

    ``sizes``: ``{source: bytes or None}`` of every input to finish; ``committed``: the
    ``_units`` rows already written for some of them (a resumed job); ``classes``: the model's.
    An input's kind and number of units come with its first result.
    """

    def __init__(self, sizes, classes, committed=()):
        self.classes = list(classes)
        self.schema = faces_schema(self.classes)
        self.sizes = dict(sizes)
        self.pending = dict.fromkeys(self.sizes)         # source -> _Input, once it is known
        by_source = {}
        for u in committed:
            by_source.setdefault(u["source"], []).append(u)
        for s, units in by_source.items():
            if s in self.pending:
                units = sorted(units, key=lambda u: u["unit"])
                self.pending[s] = _Input(units[0]["kind"], self.sizes[s], units[0]["n_units"])
                self.pending[s].resume(units)
        self.total_size = sum(v or 0 for v in self.sizes.values()) or 1
        self.done_size = sum((st.size or 0) * st.next / st.n_units
                             for st in self.pending.values() if st is not None)
        self.inputs_done = self.failed = self.frames = self.faces = 0
        self._chunks, self._inputs, self._units = [], [], []

    # ------------------------------------------------------------------ in
    def add(self, results):
        """Take a table of results (:data:`~minifer.fer.batch_units.RESULT_SCHEMA`)."""
        faces = results.column("faces").combine_chunks()
        for i, row in enumerate(results.drop_columns(["faces"]).to_pylist()):
            src = row["source"]
            if src not in self.pending:
                continue                  # finished already: a unit run twice
            st = self.pending[src]
            if st is None:
                st = self.pending[src] = _Input(row["kind"], self.sizes[src], row["n_units"])
            if row["unit"] < st.next or row["unit"] in st.held:
                continue
            st.held[row["unit"]] = (row, faces[i].values)
            while st.next in st.held:
                self._take(src, st, *st.held.pop(st.next))
            if st.next == st.n_units:
                self._finish(src, st)

    def add_rows(self, rows):
        """Take results given as dicts (e.g. :func:`error_result`)."""
        if rows:
            self.add(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA))

    def missing(self):
        """``{source: units to skip}`` of the inputs not finished: the units taken or waiting
        (none for an input that has sent nothing yet)."""
        return {s: [] if st is None else list(range(st.next)) + sorted(st.held)
                for s, st in self.pending.items()}

    def fail_missing(self, reason):
        """Give each unit not received an error result, ``"<source>: <reason>"``."""
        rows = []
        for s, st in list(self.pending.items()):
            if st is None:
                rows.append(error_result(s, f"{s}: {reason}"))
            else:
                rows += [error_result(s, f"{s}: {reason} (unit {u} of {st.n_units})", st.kind,
                                      u, st.n_units)
                         for u in range(st.next, st.n_units) if u not in st.held]
        self.add_rows(rows)

    def _take(self, source, st, row, faces):
        if row["kind"] == "video" and row["start"] is not None:
            tracks = self._stitch(st, row, faces)
        else:
            tracks, st.last_tracks = None, []   # a photo, or a segment that never ran: no link
        n = len(faces)
        self._chunks.append((source, row["kind"], faces, tracks))
        st.next += 1
        st.frames += row["frames"]
        st.faces += n
        st.seconds += row["seconds"]
        st.error = st.error or row["error"]
        self.frames += row["frames"]
        self.faces += n
        self.done_size += (st.size or 0) / st.n_units
        keep = ("source", "kind", "unit", "n_units", "start", "frames", "status", "error",
                "seconds", "worker")
        self._units.append({**{k: row[k] for k in keep}, "faces": n, "next_track": st.next_track,
                            "last_tracks": [{"track": t, "x": b[0], "y": b[1], "w": b[2], "h": b[3]}
                                            for t, b in st.last_tracks]})

    def _finish(self, source, st):
        del self.pending[source]
        status = "error" if st.error else ("ok" if st.faces else "no_face")
        self._inputs.append({"source": source, "kind": st.kind, "size": st.size,
                             "frames": st.frames, "faces": st.faces, "status": status,
                             "error": st.error, "seconds": st.seconds})
        self.inputs_done += 1
        self.failed += status == "error"

    def _stitch(self, st, row, faces):
        """The video-wide track ids of a segment's faces; updates the input's last-frame tracks."""
        cols = dict(zip(FACE_TYPE.names, faces.flatten()))
        frame = cols["frame"].to_numpy(zero_copy_only=False)
        local = cols["track"].to_numpy(zero_copy_only=False).astype(np.int64)
        boxes = np.stack([cols[k].to_numpy(zero_copy_only=False) for k in "xywh"], axis=1) \
            if len(frame) else np.zeros((0, 4), int)
        start = row["start"]
        links = {}
        if st.last_tracks and st.last_frame == start - 1:
            first = [(int(local[j]), tuple(boxes[j])) for j in np.flatnonzero(frame == start)]
            pairs = sorted(((iou(b, pb), l, g) for l, b in first for g, pb in st.last_tracks),
                           key=lambda p: (-p[0], p[1], p[2]))
            for score, l, g in pairs:
                if score >= LINK_IOU and l not in links and g not in links.values():
                    links[l] = g
        _, first_seen = np.unique(local, return_index=True)
        lut = np.zeros(int(local.max()) + 1 if len(local) else 1, np.int64)
        for l in local[np.sort(first_seen)]:
            if l in links:
                lut[l] = links[l]
            else:
                lut[l] = st.next_track
                st.next_track += 1
        ids = lut[local]
        st.last_frame = start + row["frames"] - 1
        last = np.flatnonzero(frame == st.last_frame)
        st.last_tracks = [(int(ids[j]), tuple(int(v) for v in boxes[j])) for j in last]
        return ids

    # ------------------------------------------------------------------ out
    def take(self):
        """``(faces, inputs, units)``: the tables of everything taken since the last call."""
        faces = self._faces_table()
        inputs = pa.Table.from_pylist(self._inputs, schema=INPUTS_SCHEMA)
        units = pa.Table.from_pylist(self._units, schema=UNITS_SCHEMA)
        self._chunks, self._inputs, self._units = [], [], []
        return faces, inputs, units

    def ready(self):
        """How many units :meth:`take` would hand over."""
        return len(self._units)

    def _faces_table(self):
        chunks = [c for c in self._chunks if len(c[2])]
        if not chunks:
            return self.schema.empty_table()
        structs = pa.concat_arrays([c[2] for c in chunks])
        cols = dict(zip(FACE_TYPE.names, structs.flatten()))
        idx = np.repeat(np.arange(len(chunks)), [len(c[2]) for c in chunks])
        tracks = np.concatenate([c[3] if c[3] is not None else np.full(len(c[2]), -1)
                                 for c in chunks])
        probs = cols["probs"].flatten().to_numpy(zero_copy_only=False)
        probs = probs.reshape(-1, len(self.classes))
        arrays = [pa.array([c[0] for c in chunks], pa.string()).take(idx),
                  pa.array([c[1] for c in chunks], pa.string()).take(idx),
                  cols["frame"], cols["time_s"], cols["face"], cols["x"], cols["y"], cols["w"],
                  cols["h"], pa.array(tracks, pa.int32(), mask=tracks < 0), cols["label"],
                  cols["score"]] + [pa.array(p, pa.float32()) for p in probs.T]
        return pa.Table.from_arrays(arrays, schema=self.schema)
