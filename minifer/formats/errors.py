"""The error type shared by the weights readers and the VGG16 conversion, and
the helper that keeps its messages on one line."""
from ..io import WeightsError


class ConvertError(WeightsError):
    """A source weights file is missing, corrupt, unsafe or not what it claims.

    A ``ValueError`` (via :class:`minifer.io.WeightsError`); the message is one line.
    """


def _one_line(msg):
    return " ".join(str(msg).split())
