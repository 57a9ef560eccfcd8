"""Ray for ``python -m minifer.batch``: the session, and the two Ray Data passes over the inputs.

:func:`start` joins a running cluster (``address``: ``"auto"``, ``"host:port"`` or
``"ray://host:port"``) or starts a Ray instance inside this process, sized to the machine.
:func:`probe` reads what each input is in Ray tasks; :func:`annotate` runs the units through a
pool of :class:`~minifer.fer.batch_units.Annotator` actors, each keeping one recognizer loaded.
Both stream their results back as Arrow tables, in the order they finish, with Ray Data's
backpressure; a block whose worker process dies is run again on a new one, up to ``retries``
times, and then left out of the results (``max_errored_blocks``): the caller sees which units
did not come back.

Ray is imported when these functions are first called, never by ``import minifer``.
"""
import logging
import warnings

import pyarrow as pa

from .batch_units import Annotator, probe_table

PROBE_BLOCK = 64   # sources per probe task


class RayError(Exception):
    """Ray is missing, cannot start, or the cluster cannot be reached (one-line message)."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayError("this needs Ray: pip install 'minifer[ray]'") from None
    return ray


def start(address=None, cpus=None):
    """Connect to Ray -> True if this call started it (end it with :func:`stop`), False if this
    process was connected already. ``address`` None: a local instance with ``cpus`` CPUs."""
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet = dict(logging_level=logging.ERROR, log_to_driver=False)
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
    except Exception as e:       # ConnectionError, a node that did not come up, ...
        ray.shutdown()
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayError(f"cannot start {where}: {' '.join(str(e).split())[:300]}") from None
    return True


def stop():
    """End the Ray session of this process."""
    _ray().shutdown()


def cluster_cpus():
    """The CPUs of the cluster (or of the local instance)."""
    return max(1, int(_ray().cluster_resources().get("CPU", 1)))


def quiet_logs():
    """Keep Ray's and Ray Data's messages (execution plans, progress, the traceback of a block
    that is left out) off the terminal; Ray Data still writes them to its log file in the Ray
    session folder. For a command line, which owns the terminal."""
    _ray()
    for name in ("ray", "ray.data"):
        for h in logging.getLogger(name).handlers:
            if isinstance(h, logging.StreamHandler):
                h.setLevel(logging.CRITICAL)


def _dataset(blocks):
    ray = _ray()
    ds = ray.data.from_arrow(blocks)
    ctx = ds.context
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = -1       # a block that keeps killing its worker is left out
    return ds


def _stream(ds):
    """The dataset's output tables as they come; a failure of the job itself (the cluster gone,
    actors that cannot start) is a :class:`RayError`."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
    except Exception as e:
        raise RayError(f"the job stopped: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None


def probe(sources, tasks):
    """Yield tables of :data:`~minifer.fer.batch_units.PROBE_SCHEMA` for ``sources`` (paths), in
    up to ``tasks`` tasks at a time (they reserve no CPU: reading headers hardly uses one)."""
    blocks = [pa.table({"source": pa.array(sources[i:i + PROBE_BLOCK], pa.string())})
              for i in range(0, len(sources), PROBE_BLOCK)]
    ds = _dataset(blocks).map_batches(probe_table, batch_size=None, batch_format="pyarrow",
                                      num_cpus=0, compute=_ray().data.TaskPoolStrategy(size=min(tasks, len(blocks))))
    yield from _stream(ds)


def annotate(blocks, annotator_args, workers, retries=3):
    """Yield result tables (:data:`~minifer.fer.batch_units.RESULT_SCHEMA`) for ``blocks`` (tables
    of :data:`~minifer.fer.batch_units.UNIT_SCHEMA`, one Ray task each) on ``workers``
    :class:`~minifer.fer.batch_units.Annotator` actors of one CPU each, made with
    ``annotator_args``; a block is retried ``retries`` times after its worker process died."""
    with warnings.catch_warnings():   # Ray 2.60 names per-task retries only in ray_remote_args
        warnings.simplefilter("ignore")
        ds = _dataset(blocks).map_batches(
            Annotator, fn_constructor_args=annotator_args, batch_size=None,
            batch_format="pyarrow", compute=_ray().data.ActorPoolStrategy(size=workers),
            num_cpus=1, max_task_retries=retries)
    yield from _stream(ds)
