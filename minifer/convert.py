"""``python -m minifer.convert``: pretrained VGG16 weights (ONNX, Keras HDF5, PyTorch) -> minifer ``.npz``.

    python -m minifer.convert SRC DST.npz [--format auto|onnx|h5|torch] [--float16]

Formats and what each needs:

* **ONNX** (``.onnx``) -- built in. The protobuf is parsed by a small
  wire-format reader (:mod:`minifer.formats.protobuf`; no ``onnx`` package).
  Weights are the ``graph.initializer`` tensors (``raw_data`` or the typed
  ``*_data`` fields). Models that keep tensors in external files are refused
  with a clear message.
* **Keras HDF5** (``.h5``/``.hdf5``, also Keras 3 ``.weights.h5`` and
  ``.keras``) -- needs ``h5py`` (``pip install h5py``, or the ``minifer[h5]``
  extra). Both ``save_weights`` files such as
  ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` and full-model files
  (``model_weights/`` group) are read. Kernels are already HWIO.
* **PyTorch** (``.pth``/``.pt``/``.bin``) -- built in; never imports torch and
  never runs code from the file. Both the zip format (torch >= 1.6) and the
  legacy pickle-stream format (e.g. ``vgg16-397923af.pth``) are read with a
  restricted unpickler that only accepts tensors, storages and ``OrderedDict``;
  anything else (``os.system``, a pickled ``nn.Module``...) raises
  :class:`~minifer.formats.errors.ConvertError` before it could run. The
  pre-1.0 tar format is refused.

The classifier heads (torch ``classifier.*``, Keras ``fc1/fc2/predictions``,
the ONNX file's MRI head) are ignored: only the 13-layer conv base is kept.
The library behind it is :mod:`minifer.formats` (readers, :mod:`~minifer.formats.sniff`,
:func:`minifer.formats.vgg16.convert`, :func:`minifer.formats.pretrained.download`).
"""
import argparse
import sys

from ._version import add_version_option
from .formats.errors import _one_line
from .formats.sniff import FORMATS
from .formats.vgg16 import convert
from .io import WeightsError

_PROG = "python -m minifer.convert"


class _ArgParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`_UsageError` instead of exiting."""

    def error(self, message):
        raise _UsageError(message)


class _UsageError(Exception):
    """A bad command line (exit code 2)."""


def _parser():
    p = _ArgParser(
        prog=_PROG,
        description="Convert pretrained VGG16 weights (ONNX, Keras .h5, PyTorch .pth) "
                    "to a minifer .npz weights file (13 conv layers, HWIO kernels).")
    p.add_argument("src", help="source weights file")
    p.add_argument("dst", help="output .npz file (written atomically)")
    p.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                   help="source format (default: detect from magic bytes/extension)")
    p.add_argument("--float16", action="store_true",
                   help="store arrays as float16 (half the size; loads back as float32)")
    add_version_option(p)
    return p


def main(argv=None):
    """CLI entry point; returns the exit code (0 ok, 1 bad input, 2 usage)."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as e:
        print(f"{_PROG}: error: {_one_line(e)} (see --help)", file=sys.stderr)
        return 2
    try:
        s = convert(args.src, args.dst, format=args.format, float16=args.float16)
    except (WeightsError, OSError) as e:
        msg = e.strerror if isinstance(e, OSError) and e.strerror else e
        extra = f": {e.filename}" if isinstance(e, OSError) and e.filename else ""
        print(f"{_PROG}: error: {_one_line(msg)}{extra}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # never show a traceback for bad input
        print(f"{_PROG}: error: cannot convert {args.src} ({type(e).__name__}: {_one_line(e)[:300]})",
              file=sys.stderr)
        return 1
    meta = s["meta"]
    print(f"{meta['source']} ({s['format']}) -> {args.dst}: {meta['kind']}, {s['layers']} conv layers, "
          f"{s['params']:,} parameters, {s['bytes'] / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
