"""Readers for pretrained weights files: file -> ``{name: np.ndarray}`` (floats as
float32), raw names as stored.

* :func:`read_onnx` (:mod:`minifer.formats.onnx`) -- ONNX ``.onnx``; built in,
  parsed by the small wire-format reader in :mod:`minifer.formats.protobuf`;
* :func:`read_keras_h5` (:mod:`minifer.formats.keras_h5`) -- Keras HDF5
  (``.h5``/``.hdf5``, Keras 3 ``.weights.h5`` and ``.keras``); needs ``h5py``;
* :func:`read_torch` (:mod:`minifer.formats.torch_pickle`) -- PyTorch
  (``.pth``/``.pt``/``.bin``); built in, restricted unpickler, never imports torch.

Each raises :class:`~minifer.formats.errors.ConvertError` for a missing,
corrupt, unsafe or mislabelled file. Format detection, the VGG16 mapping and
the command line live in :mod:`minifer.convert`, which re-exports these names.
"""
from .errors import ConvertError
from .keras_h5 import read_keras_h5
from .onnx import read_onnx
from .torch_pickle import read_torch

__all__ = ["ConvertError", "read_onnx", "read_keras_h5", "read_torch"]
