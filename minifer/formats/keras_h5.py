"""Read Keras HDF5 weights (``.h5``/``.hdf5``, also Keras 3 ``.weights.h5`` and
``.keras``).

Needs ``h5py`` (``pip install h5py``, or the ``minifer[h5]`` extra), imported
only when a file is read. Both ``save_weights`` files such as
``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`` and full-model files
(``model_weights/`` group) are read. Kernels are already HWIO.
"""
import io
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .errors import ConvertError, _one_line


def _require_h5py():
    try:
        import h5py
    except ImportError:
        raise ConvertError("reading Keras .h5 weights needs h5py: pip install h5py "
                           "(or pip install 'minifer[h5]')") from None
    return h5py


def _decode_names(v):
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in np.asarray(v).ravel()]


def _h5_array(ds):
    a = np.asarray(ds[()])
    return a.astype(np.float32) if a.dtype.kind == "f" else a


def _read_h5_file(f, path, h5py):
    root = f["model_weights"] if "model_weights" in f else f
    out = OrderedDict()
    if "layer_names" in root.attrs:  # Keras 2 save_weights / full-model layout
        for lname in _decode_names(root.attrs["layer_names"]):
            if lname not in root:
                raise ConvertError(f"{path}: layer {lname!r} is listed but missing")
            g = root[lname]
            for w in _decode_names(g.attrs.get("weight_names", [])):
                if w not in g:
                    raise ConvertError(f"{path}: weight {lname}/{w} is listed but missing")
                out[f"{lname}/{w}"] = _h5_array(g[w])
    else:  # Keras 3 .weights.h5 (layers/<name>/vars/<i>) or any plain tree
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.split("/")[0].startswith("optimizer"):
                out[name] = _h5_array(obj)
        root.visititems(visit)
    return out


def read_keras_h5(path):
    """Read a Keras HDF5 weights file -> ``{"<layer>/<weight path>": array}``.

    Handles ``save_weights`` files (root attrs ``layer_names`` / per-layer
    ``weight_names``: ``block1_conv1/block1_conv1_W_1:0`` or
    ``block1_conv1/block1_conv1/kernel:0``), full-model files (the same under
    ``model_weights/``), Keras 3 ``.weights.h5`` (``layers/<name>/vars/0``)
    and ``.keras`` archives. Kernels stay HWIO. Needs ``h5py``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConvertError(f"file not found: {path}")
    h5py = _require_h5py()
    try:
        if zipfile.is_zipfile(path):  # Keras 3 .keras archive
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(".weights.h5")]
                if not names:
                    raise ConvertError(f"{path}: zip archive without a Keras *.weights.h5 inside")
                data = io.BytesIO(z.read(names[0]))
            with h5py.File(data, "r") as f:
                out = _read_h5_file(f, path, h5py)
        else:
            with h5py.File(path, "r") as f:
                out = _read_h5_file(f, path, h5py)
    except ConvertError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ConvertError(f"{path}: cannot read HDF5 weights ({type(e).__name__}: {_one_line(e)})") from None
    if not out:
        raise ConvertError(f"{path}: HDF5 file holds no weights")
    return dict(out)
