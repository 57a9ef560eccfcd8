"""Ray for ``python -m minifer.batch``: the session, and the Ray Data job over the inputs.

:func:`start` joins a running cluster (``address``: ``"auto"`` or ``"host:port"``; a Ray Client
address, ``"ray://..."``, is refused: Ray Data does not run over Ray Client) or starts a Ray
instance inside this process, sized to the machine.
:func:`annotate` is one streaming Ray Data job: tasks read what each input is and cut it into
units (:func:`~minifer.fer.batch_units.plan_units`), and a pool of
:class:`~minifer.fer.batch_units.Annotator` actors, each keeping one recognizer loaded, runs them.
Every unit group is a block of its own, so a video's segments spread over all the actors. The
results stream back as Arrow tables, in the order they finish, with Ray Data's backpressure; a
block whose worker process dies is run again (by Ray) up to ``retries`` times, and then left
out of the results (``max_errored_blocks``): the caller sees which units did not come back.

Ray is imported when these functions are first called, never by ``import minifer``.
"""
import logging
import warnings

import pyarrow as pa

from .batch_units import Annotator, plan_units


class RayError(Exception):
    """Ray is missing, cannot start, or the cluster cannot be reached (one-line message)."""


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayError("this needs Ray: pip install 'minifer[ray]'") from None
    return ray


def check_address(address):
    """:class:`RayError` for a Ray Client address (``ray://``): Ray Data does not run over Ray
    Client (Ray 2.60 stops the first job with ``'Worker' object has no attribute 'core_worker'``;
    its maintainers point to job submission instead, ray-project/ray#48682)."""
    if address and address.startswith("ray://"):
        raise RayError(f"Ray Data does not run over Ray Client ({address}): run this command on a node "
                       "of the cluster with --address auto, or submit it from here with "
                       "ray job submit --address http://HEAD_IP:8265 -- python -m minifer.batch ... --address auto")


def start(address=None, cpus=None):
    """Connect to Ray -> True if this call started it (end it with :func:`stop`), False if this
    process was connected already. ``address`` None: a local instance with ``cpus`` CPUs; a
    ``ray://`` one is refused (:func:`check_address`)."""
    check_address(address)
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


def _stream(ds):
    """The results of each task as a table, in the order they come; a failure of the job itself
    (the cluster gone, actors that cannot start) is a :class:`RayError`."""
    try:
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            yield pa.Table.from_struct_array(table.column("results").combine_chunks().flatten())
    except Exception as e:
        message = " ".join(str(e).split())[:300]
        raise RayError(f"the job stopped: {type(e).__name__}: {message}") from None


def annotate(inputs, plan_args, annotator_args, workers, retries=3):
    """Yield result tables (:data:`~minifer.fer.batch_units.RESULT_SCHEMA`) for ``inputs``
    (tables of :data:`~minifer.fer.batch_units.PLAN_SCHEMA`, one planning task each, which
    reserve no CPU: they read headers): their units are planned with ``plan_args`` (a dict) and run
    on ``workers`` :class:`~minifer.fer.batch_units.Annotator` actors of one CPU each, made with
    ``annotator_args``; a block is run again ``retries`` times after its worker process died."""
    ray = _ray()
    ds = ray.data.from_arrow(inputs)
    ctx = ds.context
    ctx.enable_progress_bars = False
    ctx.target_max_block_size = 1     # each task plan_units yields is a block of its own
    ctx.max_errored_blocks = -1       # a block that keeps killing its worker is left out
    ds = ds.map_batches(plan_units, fn_kwargs=plan_args, batch_size=None, batch_format="pyarrow",
                        num_cpus=0,
                        compute=ray.data.TaskPoolStrategy(size=min(workers, len(inputs))))
    with warnings.catch_warnings():   # Ray 2.60 names per-task retries only in ray_remote_args
        warnings.simplefilter("ignore")
        ds = ds.map_batches(Annotator, fn_constructor_args=annotator_args, batch_size=1,
                            batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                            max_task_retries=retries)
    yield from _stream(ds)
