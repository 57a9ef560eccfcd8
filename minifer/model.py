"""Sequential: a list of layers run forward in order and backward in reverse.

Weights are saved as ``.npz`` with flat ``layer/param`` keys plus JSON
metadata holding the architecture, so :func:`load_model` rebuilds the model
from the file alone (see :mod:`minifer.io`).
"""
import numpy as np

from . import backend
from .io import WeightsError, load_npz, save_npz
from .layers import LAYERS, Parameter
from .layers.loss import softmax


class Sequential:
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

    # ---- running ---------------------------------------------------------------
    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    __call__ = forward

    def backward(self, dout, input_grad=False):
        """Backpropagate dL/dout; returns dL/dx if ``input_grad`` (saliency), else None.

        Without ``input_grad`` it stops below the lowest layer that has trainable
        parameters, so frozen early layers cost nothing in the backward pass.
        """
        stop = 0 if input_grad else next((i for i, l in enumerate(self.layers) if l.trainable), len(self.layers))
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            layer.need_input_grad = input_grad or i > stop
            dout = layer.backward(dout)
        return dout

    def train(self, mode=True):
        for layer in self.layers:
            layer.training = mode
        return self

    def eval(self):
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
        for layer in self.layers:
            for k, p in layer.params.items():
                yield f"{layer.name}/{k}", p

    def params(self):
        return [p for _, p in self.named_params()]

    def num_params(self, trainable_only=False):
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
        shape, total = tuple(input_shape or self.meta.get("input_shape")), 0
        for l in self.layers:
            total += l.flops(shape)
            shape = tuple(l.output_shape(shape))
        return total

    # ---- files -------------------------------------------------------------------
    def save(self, path, dtype=None, **meta):
        """Write weights + architecture + metadata atomically (``dtype=np.float16`` halves it)."""
        from . import __version__
        m = dict(self.meta, **meta)
        m.update(architecture=self.architecture(), name=self.name, minifer_version=__version__)
        save_npz(path, self.state_dict(), m, dtype=dtype)


def build_from_architecture(arch, name="model"):
    """Rebuild a Sequential from the ``architecture`` list stored in metadata."""
    layers = []
    for spec in arch:
        cls = LAYERS.get(spec.get("type"))
        if cls is None:
            raise WeightsError(f"unknown layer type {spec.get('type')!r} in weights metadata")
        layers.append(cls(name=spec["name"], **spec.get("config", {})))
    return Sequential(layers, name=name)


def load_model(path):
    """Load a weights file into a new model built from its own metadata -> model."""
    arrays, meta = load_npz(path)
    if "architecture" not in meta:
        raise WeightsError(f"{path}: weights file has no architecture (convert output? use zoo builders)")
    try:
        model = build_from_architecture(meta["architecture"], meta.get("name", "model"))
    except TypeError as e:
        raise WeightsError(f"{path}: bad architecture in metadata ({e})") from None
    model.load_state_dict(arrays)
    model.meta = {k: v for k, v in meta.items() if k not in ("architecture", "format")}
    model.eval()
    return model
