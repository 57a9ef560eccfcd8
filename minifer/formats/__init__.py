"""Pretrained weights files: reading them, and converting VGG16 to minifer's ``.npz``.

Readers, file -> ``{name: np.ndarray}`` (floats as float32), raw names as stored:

* :func:`read_onnx` (:mod:`minifer.formats.onnx`) -- ONNX ``.onnx``; built in,
  parsed by the small wire-format reader in :mod:`minifer.formats.protobuf`;
* :func:`read_keras_h5` (:mod:`minifer.formats.keras_h5`) -- Keras HDF5
  (``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` and ``.keras``); needs ``h5py``;
* :func:`read_torch` (:mod:`minifer.formats.torch_pickle`) -- PyTorch
  (``.pth``/``.pt``/``.bin``); built in, restricted unpickler, never imports torch.

On top of them:

* :mod:`minifer.formats.sniff` -- :func:`detect_format` (magic bytes, then the
  extension) and :func:`read_weights` (any supported file);
* :mod:`minifer.formats.vgg16` -- the VGG16 conv base: :func:`~minifer.formats.vgg16.vgg16_state`
  (raw names -> ``block{b}_conv{i}/W`` HWIO), metadata, preprocessing, and
  :func:`convert` (file -> ``.npz``, what ``python -m minifer.convert`` runs);
* :mod:`minifer.formats.pretrained` -- :func:`download` of published files,
  verified by checksum, into ``~/.cache/minifer``.

Each raises :class:`~minifer.formats.errors.ConvertError` (a
:class:`minifer.io.WeightsError`) for a missing, corrupt, unsafe or mislabelled file.
"""
from .errors import ConvertError
from .keras_h5 import read_keras_h5
from .onnx import read_onnx
from .pretrained import default_cache_dir, download
from .sniff import detect_format, read_weights
from .torch_pickle import read_torch
from .vgg16 import convert

__all__ = ["ConvertError", "read_onnx", "read_keras_h5", "read_torch", "detect_format", "read_weights",
           "convert", "download", "default_cache_dir"]
