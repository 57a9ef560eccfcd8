"""Parameter and Layer: the two small classes every layer builds on.

A layer owns its parameters (``self.params``: name -> :class:`Parameter`) and
any non-trained state (``self.buffers``: name -> array, e.g. batch-norm's
running mean). ``forward(x)`` computes the output and keeps what the backward
pass needs in ``self.cache``; ``backward(dout)`` takes dLoss/dOutput, fills each
``param.grad`` and returns dLoss/dInput. Every subclass registers itself by
class name so a model can be rebuilt from the JSON in a weights file.
"""
from .. import backend

LAYERS = {}  # class name -> class, filled by __init_subclass__


class Parameter:
    """A trainable array with its gradient.

    ``trainable=False`` freezes it (optimizers skip it); ``decay=False`` exempts
    it from weight decay (biases, batch-norm scales); ``lr_scale`` multiplies
    the learning rate (per-group learning rates for fine-tuning).
    """

    def __init__(self, data, decay=True):
        self.data = data
        self.version = 0          # bumped by every optimizer update of ``data`` in place
        self.grad = None
        self.trainable = True
        self.decay = decay
        self.lr_scale = 1.0

    @property
    def shape(self):
        """Shape of ``data``."""
        return self.data.shape

    @property
    def size(self):
        """Number of values in ``data``."""
        return self.data.size


class Layer:
    """Base class: a named layer with ``forward``/``backward``."""

    fuses_relu = False     # forward(x, relu=True) applies a ReLU after the layer in the same pass

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        LAYERS[cls.__name__] = cls

    def __init__(self, name=None):
        self.name = name
        self.params = {}
        self.buffers = {}
        self.training = True
        self.cache = None
        self.need_input_grad = True

    # subclasses: forward(x), backward(dout), config(), output_shape(in_shape), flops(in_shape)
    def config(self):
        """Constructor arguments that rebuild this layer (JSON-able)."""
        return {}

    def output_shape(self, in_shape):
        """Shape of one sample's output (no batch axis) for one sample's input shape."""
        return in_shape

    def flops(self, in_shape):
        """Forward floating-point operations for one sample (multiply-add = 2)."""
        return 0

    @property
    def trainable(self):
        """True if any parameter is trainable."""
        return any(p.trainable for p in self.params.values())

    def freeze(self, frozen=True):
        """Freeze (or with ``frozen=False`` unfreeze) every parameter of the layer."""
        for p in self.params.values():
            p.trainable = not frozen

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def he_normal(rng, shape, fan_in):
    """He (Kaiming) initialisation for ReLU nets: N(0, 2/fan_in), float32."""
    w = rng.standard_normal(shape).astype(backend.DTYPE) * (2.0 / fan_in) ** 0.5
    return backend.to_device(w)
