"""Fetching published pretrained weights files, verified by checksum, into a local cache.

Never used by the tests against the network (there is none there): they serve
``file://`` URLs.
"""
import hashlib
import os
import re
from pathlib import Path

from ..io import atomic_write
from .errors import ConvertError, _one_line

#: Published weights files with the checksum that can be verified.
PRETRAINED = {
    "vgg16-keras-notop": {
        "url": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
               "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5": "6d6bbae143d832006294945121d1f1fc", "format": "h5"},
    "vgg16-torch": {
        "url": "https://download.pytorch.org/models/vgg16-397923af.pth",
        "sha256": "397923af", "format": "torch"},  # torch hub: name holds the sha256 prefix
}
_HUB_HASH = re.compile(r"-([a-f0-9]{6,64})\.")


def default_cache_dir():
    """``$MINIFER_CACHE`` or ``~/.cache/minifer``."""
    return Path(os.environ.get("MINIFER_CACHE") or Path.home() / ".cache" / "minifer")


def _checks_for(url, sha256, md5):
    if sha256 is None and md5 is None:
        for entry in PRETRAINED.values():
            if entry["url"] == url:
                sha256, md5 = entry.get("sha256"), entry.get("md5")
        if sha256 is None and md5 is None:
            m = _HUB_HASH.search(url.rsplit("/", 1)[-1])
            if m:
                sha256 = m.group(1)
    if sha256 is None and md5 is None:
        raise ConvertError(f"no checksum known for {url}; pass sha256= (full or a prefix) or md5=")
    return (sha256 or "").lower(), (md5 or "").lower()


def _verify(sha_hex, md5_hex, want_sha, want_md5, what):
    if want_sha and not sha_hex.startswith(want_sha):
        raise ConvertError(f"{what}: sha256 {sha_hex[:16]}... does not match {want_sha}")
    if want_md5 and md5_hex != want_md5:
        raise ConvertError(f"{what}: md5 {md5_hex} does not match {want_md5}")


def download(url, sha256=None, cache_dir=None, *, md5=None, timeout=60):
    """Fetch ``url`` into ``cache_dir`` (default ``~/.cache/minifer``), verified.

    ``sha256`` may be the full hex digest or a prefix (the torch hub
    convention: ``vgg16-397923af.pth`` carries the first 8 hex digits); ``md5``
    is used for the Keras file, whose publisher lists only an md5. Without
    either, a URL from :data:`PRETRAINED` uses its pinned checksum and a
    hub-style file name its embedded prefix; anything else is refused. The
    file is written atomically and reused when already cached and valid.
    Returns the local :class:`~pathlib.Path`.
    """
    import urllib.request

    want_sha, want_md5 = _checks_for(url, sha256, md5)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = url.rsplit("/", 1)[-1].split("?")[0] or "download"
    dst = folder / name
    if dst.is_file():
        h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
        with open(dst, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h_sha.update(chunk)
                h_md5.update(chunk)
        try:
            _verify(h_sha.hexdigest(), h_md5.hexdigest(), want_sha, want_md5, str(dst))
            return dst
        except ConvertError:
            pass  # stale or corrupt cache entry: download again

    def write(f):
        h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
        with urllib.request.urlopen(url, timeout=timeout) as r:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
                h_sha.update(chunk)
                h_md5.update(chunk)
        _verify(h_sha.hexdigest(), h_md5.hexdigest(), want_sha, want_md5, url)

    try:
        atomic_write(dst, write, suffix=".part")
    except OSError as e:
        raise ConvertError(f"download of {url} failed: {_one_line(e)}") from None
    return dst
