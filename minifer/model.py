"""Sequential: a list of layers run forward in order and backward in reverse.

In evaluation mode ``forward`` runs each convolution or dense layer and the batch-norm after it
as one layer, with the batch-norm folded into its weights and bias (:mod:`minifer.folding`):
fewer passes over memory, the same outputs up to float32 rounding. The folded layers are kept
from call to call while the weights stay the same. It keeps no layer caches; ``backward`` after
it first runs the layers' own forward again, so gradients are those of the unfolded network.

Weights are saved as ``.npz`` with flat ``layer/param`` keys plus JSON
metadata holding the architecture, so :func:`load_model` rebuilds the model
from the file alone (see :mod:`minifer.io`).
"""
import math

import numpy as np

from . import backend
from ._version import __version__
from .folding import fold_pair, folds
from .io import WeightsError, load_npz, save_npz
from .layers import LAYERS, Parameter, ReLU
from .layers.loss import softmax
from .ops import batch_chunks

#: Evaluation mode runs a batch through the network in sub-batches whose largest activation takes
#: about this many bytes (``Sequential.forward``).
EVAL_CHUNK_BYTES = 8 << 20


class Sequential:
    """A list of layers run forward in order and backward in reverse."""

    def __init__(self, layers, name="model"):
        self.layers = list(layers)
        self.name = name
        seen = {}
        for layer in self.layers:               # unique names: conv1, bn1, conv2, ...
            if layer.name is None:
                base = type(layer).__name__.lower()
                seen[base] = seen.get(base, 0) + 1
                layer.name = f"{base}{seen[base]}"
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate layer names: {names}")
        self.meta = {}                          # classes, input_shape, preprocess, ...
        self._folded = None                     # evaluation mode's folded steps and what they came from
        self._replay = None                     # the input of a folded forward, for backward

    # ---- running ---------------------------------------------------------------
    def _steps(self):
        """``[(i, relu)]``: the layers to run, in order. A ReLU right after a layer that can apply
        it in its own pass (Conv2d, Dense, BatchNorm: ``fuses_relu``) is fused into that layer
        (``relu=True``) and has no step of its own: one pass over memory less each way."""
        steps, i, layers = [], 0, self.layers
        while i < len(layers):
            relu = layers[i].fuses_relu and i + 1 < len(layers) and type(layers[i + 1]) is ReLU
            steps.append((i, relu))
            i += 2 if relu else 1
        return steps

    def _own_steps(self):
        return [(self.layers[i], relu) for i, relu in self._steps()]

    def _plan(self):
        """Evaluation mode's steps ``[(layer, relu)]``: each Conv2d or Dense followed by a
        batch-norm is one folded layer (:func:`minifer.folding.fold_pair`). The folded layers are
        made again when the layer list changes, when any array they come from is replaced
        (loading, training's running statistics) or changed in place by an optimizer (which
        bumps its ``version``), and when ``train()`` is called."""
        layers, kept = self.layers, self._folded
        if kept is None or kept["layers"] != layers:
            steps = self._steps()
            kept = self._folded = {"layers": list(layers), "steps": steps, "sizes": {}, "key": None,
                                   "pairs": [i for i, _ in steps if i + 1 < len(layers)
                                             and folds(layers[i], layers[i + 1])]}
        arrays = [a for i in kept["pairs"] for layer in layers[i:i + 2] for a in _arrays(layer)]
        key = tuple(id(a) if v is None else (id(a), v) for a, v in arrays)
        if key != kept["key"]:        # (the arrays are kept below, so no new one can reuse an id)
            relu_of, pairs = dict(kept["steps"]), kept["pairs"]
            kept.update(key=key, arrays=arrays, plan=[
                (fold_pair(layers[i], layers[i + 1]), relu_of[i + 1]) if i in pairs else (layers[i], relu)
                for i, relu in kept["steps"] if i - 1 not in pairs])
        return kept["plan"]

    def _sub_batches(self, x):
        """Slices of the batch ``x`` for evaluation mode, each with its largest activation at most
        about ``EVAL_CHUNK_BYTES`` (one slice on the GPU), as many as a multiple of the worker
        threads and of about equal size; call after :meth:`_plan`."""
        sizes, shape = self._folded["sizes"], tuple(x.shape[1:])
        if shape not in sizes:
            most = math.prod(shape)
            for layer in self.layers:
                shape = tuple(layer.output_shape(shape))
                most = max(most, math.prod(shape))
            sizes[tuple(x.shape[1:])] = most
        k = len(batch_chunks(len(x), sizes[tuple(x.shape[1:])] * x.itemsize, EVAL_CHUNK_BYTES))
        if k > 1:
            k = -(-k // backend.worker_count()) * backend.worker_count()
        return [slice(i * len(x) // k, (i + 1) * len(x) // k) for i in range(k)] or [slice(0, 0)]

    @staticmethod
    def _run(x, steps, keep=True):
        """``x`` through ``steps``; ``keep=False``: each layer's cache let go as soon as it ran."""
        for layer, relu in steps:
            x = layer.forward(x, relu=True) if relu else layer.forward(x)
            if not keep:
                layer.cache = None
        return x

    def forward(self, x):
        """Run every layer in order (also ``model(x)``), each ReLU fused into the layer before it
        where that layer can apply it. In evaluation mode each batch-norm is folded into the
        convolution or dense layer before it (the same result, up to float32 rounding), and a
        large batch runs through the whole network in sub-batches: activations of
        ``EVAL_CHUNK_BYTES`` stay in the CPU's cache from layer to layer, and no block
        allocated is so large that the C library maps fresh pages for it on every call. The
        sub-batches run side by side on minifer's worker threads, each whole network pass in one
        thread (:func:`minifer.backend.map_chunks`): no hand-over between layers (measured in
        docs/13_performance.md, section 3)."""
        with backend.one_blas_thread(len(x) > 1):
            if any(layer.training for layer in self.layers):
                self._replay = None
                return self._run(x, self._own_steps())
            self._replay = x          # backward runs the layers' own forward again: no caches kept
            plan = self._plan()
            out = backend.map_chunks(lambda s: self._run(x[s], plan, keep=False), self._sub_batches(x))
            return out[0] if len(out) == 1 else backend.xp.concatenate(out)

    __call__ = forward

    def backward(self, dout, input_grad=False):
        """Backpropagate dL/dout; returns dL/dx if ``input_grad`` (saliency), else None.

        Without ``input_grad`` it stops below the lowest layer that has trainable
        parameters, so frozen early layers cost nothing in the backward pass.
        """
        with backend.one_blas_thread(len(dout) > 1):
            if self._replay is not None:    # after evaluation mode's forward: the layers' own, for their caches
                x, self._replay = self._replay, None
                self._run(x, self._own_steps())
            stop = 0 if input_grad else next((i for i, l in enumerate(self.layers) if l.trainable),
                                             len(self.layers))
            for i, _ in reversed(self._steps()):
                if i < stop:
                    break
                layer = self.layers[i]
                layer.need_input_grad = input_grad or i > stop
                dout = layer.backward(dout)
            return dout

    def train(self, mode=True):
        """Training mode for every layer (dropout on, batch statistics)."""
        for layer in self.layers:
            layer.training = mode
        if mode:
            self._folded = self._replay = None
        return self

    def eval(self):
        """Evaluation mode (dropout off, batch-norm running statistics)."""
        return self.train(False)

    def predict_proba(self, x, batch_size=256):
        """Class probabilities for a float32 NHWC batch (host arrays in and out)."""
        was = [l.training for l in self.layers]
        self.eval()
        out = []
        for i in range(0, len(x), batch_size):
            z = self.forward(backend.to_device(x[i:i + batch_size], backend.DTYPE))
            out.append(backend.to_host(softmax(z)))
            for l in self.layers:
                l.cache = None
            self._replay = None
        for l, t in zip(self.layers, was):
            l.training = t
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def seed(self, rng):
        """Give every stochastic layer (Dropout) the same numpy Generator."""
        for layer in self.layers:
            if hasattr(layer, "rng"):
                layer.rng = rng

    # ---- parameters --------------------------------------------------------------
    def named_params(self):
        """Yield ``("layer/param", Parameter)`` pairs."""
        for layer in self.layers:
            for k, p in layer.params.items():
                yield f"{layer.name}/{k}", p

    def params(self):
        """All ``Parameter``s, in layer order (what optimizers take)."""
        return [p for _, p in self.named_params()]

    def num_params(self, trainable_only=False):
        """Number of parameter values (``trainable_only=True``: unfrozen only)."""
        return sum(p.size for p in self.params() if p.trainable or not trainable_only)

    def state_dict(self):
        """Flat ``layer/param`` -> host array, parameters and buffers."""
        out = {}
        for layer in self.layers:
            for k, p in layer.params.items():
                out[f"{layer.name}/{k}"] = backend.to_host(p.data)
            for k, b in layer.buffers.items():
                out[f"{layer.name}/{k}"] = backend.to_host(b)
        return out

    def load_state_dict(self, state, strict=True):
        """Load ``layer/param`` arrays; ``WeightsError`` on missing/extra keys or bad shapes."""
        expected = {}
        for layer in self.layers:
            for k, p in layer.params.items():
                expected[f"{layer.name}/{k}"] = (layer.params, k, p.data)
            for k, b in layer.buffers.items():
                expected[f"{layer.name}/{k}"] = (layer.buffers, k, b)
        missing = [k for k in expected if k not in state]
        extra = [k for k in state if k not in expected]
        if strict and (missing or extra):
            raise WeightsError(f"weights do not fit the model: missing {missing[:4]}, unexpected {extra[:4]}")
        present = [(key, v) for key, v in expected.items() if key in state]
        for key, (_, _, cur) in present:      # check every shape before changing anything
            if np.shape(state[key]) != cur.shape:
                raise WeightsError(f"weights do not fit the model: {key} has shape {np.shape(state[key])}, "
                                   f"model wants {cur.shape}")
        for key, (store, k, _) in present:
            a = backend.to_device(np.asarray(state[key]), backend.DTYPE)
            if isinstance(store[k], Parameter):
                store[k].data = a
            else:
                store[k] = a

    # ---- description -------------------------------------------------------------
    def architecture(self):
        """The layer list as JSON-able dicts (type, name, config)."""
        return [{"type": type(l).__name__, "name": l.name, "config": l.config()} for l in self.layers]

    def summary(self, input_shape=None):
        """A table of layers with output shapes, parameter counts and FLOPs per image."""
        shape = tuple(input_shape or self.meta.get("input_shape"))
        rows, total_p, total_f = [], 0, 0
        for l in self.layers:
            f = l.flops(shape)
            shape = tuple(l.output_shape(shape))
            p = sum(q.size for q in l.params.values())
            total_p, total_f = total_p + p, total_f + f
            rows.append(f"{l.name:<16}{type(l).__name__:<16}{str(shape):<18}{p:>10,}{f / 1e6:>12.2f}")
        head = f"{'layer':<16}{'type':<16}{'output':<18}{'params':>10}{'MFLOPs':>12}"
        line = "-" * len(head)
        tail = f"{'total':<50}{total_p:>10,}{total_f / 1e6:>12.2f}"
        return "\n".join([head, line, *rows, line, tail])

    def flops(self, input_shape=None):
        """Forward FLOPs for one image (multiply-add = 2)."""
        shape, total = tuple(input_shape or self.meta.get("input_shape")), 0
        for l in self.layers:
            total += l.flops(shape)
            shape = tuple(l.output_shape(shape))
        return total

    # ---- files -------------------------------------------------------------------
    def save(self, path, dtype=None, compress=False, **meta):
        """Write weights + architecture + metadata atomically (``dtype=np.float16`` halves it;
        ``compress`` deflates it, see :func:`minifer.io.save_npz`)."""
        m = dict(self.meta, **meta)
        m.update(architecture=self.architecture(), name=self.name, minifer_version=__version__)
        save_npz(path, self.state_dict(), m, dtype=dtype, compress=compress)


def _arrays(layer):
    """``[(array, version)]`` of a layer's parameters (versions bumped by optimizers) and buffers."""
    return [(p.data, p.version) for p in layer.params.values()] + [(b, None) for b in layer.buffers.values()]


def build_from_architecture(arch, name="model"):
    """Rebuild a Sequential from the ``architecture`` list stored in metadata."""
    layers = []
    for spec in arch:
        cls = LAYERS.get(spec.get("type"))
        if cls is None:
            raise WeightsError(f"unknown layer type {spec.get('type')!r} in weights metadata")
        layers.append(cls(name=spec["name"], **spec.get("config", {})))
    return Sequential(layers, name=name)


class Ensemble:
    """Several trained models with the same classes and preprocessing, used as one.

    ``predict_proba`` averages the members' softmax outputs. Members may take
    different input sizes (e.g. 48 px, and 44 px for a network trained on random
    crops): the ensemble takes the largest, and each member sees the central
    crop of its own size (:meth:`member_input`). Saved as one file: member
    ``i``'s arrays under ``m{i}/layer/param`` keys, and their architectures in
    ``meta["ensemble"]``; :func:`load_model` rebuilds it like a single model.
    """

    def __init__(self, members, meta=None):
        if not members:
            raise ValueError("an ensemble needs at least one model")
        first = members[0].meta
        for m in members[1:]:
            for key in ("classes", "preprocess"):
                if m.meta.get(key) != first.get(key):
                    raise ValueError(f"ensemble members differ in {key}: {first.get(key)} vs {m.meta.get(key)}")
        shapes = [tuple(m.meta["input_shape"]) for m in members if m.meta.get("input_shape")]
        if len({s[2:] for s in shapes}) > 1:
            raise ValueError(f"ensemble members differ in input channels: {sorted(set(shapes))}")
        self.members = list(members)
        self.meta = {k: first[k] for k in ("classes", "preprocess") if k in first}
        if shapes:
            self.meta["input_shape"] = list(max(shapes))
        self.meta.update(meta or {})
        self.name = f"ensemble of {len(members)}"

    def member_input(self, m, x):
        """The part of the ensemble's input batch ``x`` (N, H, W, C) that member ``m`` sees:
        the central crop of its own input size (``x`` itself when the sizes agree)."""
        side = (m.meta.get("input_shape") or x.shape[1:])[0]
        top, left = (x.shape[1] - side) // 2, (x.shape[2] - side) // 2
        if top == left == 0 and side == x.shape[1] == x.shape[2]:
            return x
        return backend.get_array_module(x).ascontiguousarray(x[:, top:top + side, left:left + side])

    def predict_proba(self, x, batch_size=256):
        """The mean of the members' class probabilities for a float32 NHWC batch."""
        acc = None
        for m in self.members:
            p = np.asarray(m.predict_proba(self.member_input(m, x), batch_size), dtype=np.float64)
            acc = p if acc is None else acc + p
        return (acc / len(self.members)).astype(np.float32)

    def eval(self):
        """Evaluation mode for every member."""
        for m in self.members:
            m.eval()
        return self

    def flops(self, input_shape=None):
        """Forward FLOPs for one image: the members' sum (each at its own input size)."""
        return sum(m.flops(input_shape or m.meta.get("input_shape") or self.meta.get("input_shape"))
                   for m in self.members)

    def num_params(self, trainable_only=False):
        """Number of parameter values over all members."""
        return sum(m.num_params(trainable_only) for m in self.members)

    def save(self, path, dtype=None, compress=False, **meta):
        """One file: member arrays under ``m{i}/``, their architectures in the metadata."""
        arrays = {f"m{i}/{k}": v for i, m in enumerate(self.members) for k, v in m.state_dict().items()}
        members = [{"architecture": m.architecture(), "name": m.name,
                    **{k: v for k, v in m.meta.items() if k not in ("classes", "preprocess")}}
                   for m in self.members]
        m = dict(self.meta, **meta)
        m.update(ensemble=members, name=self.name, minifer_version=__version__)
        save_npz(path, arrays, m, dtype=dtype, compress=compress)


def _build(arrays, arch, name, where):
    try:
        model = build_from_architecture(arch, name)
    except TypeError as e:
        raise WeightsError(f"{where}: bad architecture in metadata ({e})") from None
    model.load_state_dict(arrays)
    return model.eval()


def load_model(path):
    """Load a weights file into a new model built from its own metadata -> Sequential or Ensemble."""
    arrays, meta = load_npz(path)
    if isinstance(meta.get("ensemble"), list) and meta["ensemble"]:
        members = []
        for i, spec in enumerate(meta["ensemble"]):
            prefix = f"m{i}/"
            own = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            model = _build(own, spec.get("architecture", []), spec.get("name", "model"), path)
            model.meta = {k: v for k, v in spec.items() if k != "architecture"}
            model.meta.update({k: meta[k] for k in ("classes", "preprocess") if k in meta})
            model.meta.setdefault("input_shape", meta.get("input_shape"))   # older files: one for all
            members.append(model)
        return Ensemble(members, {k: v for k, v in meta.items() if k not in ("ensemble", "format")})
    if "architecture" not in meta:
        raise WeightsError(f"{path}: weights file has no architecture (convert output? use zoo builders)")
    model = _build(arrays, meta["architecture"], meta.get("name", "model"), path)
    model.meta = {k: v for k, v in meta.items() if k not in ("architecture", "format")}
    return model
