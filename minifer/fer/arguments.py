"""Argument types the command lines share."""
import argparse


def ranged(convert, ok, text, name):
    """An argparse type: ``convert(s)`` that must satisfy ``ok``; ``name`` shows in errors."""
    def parse(s):
        v = convert(s)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {text}, got {s}")
        return v
    parse.__name__ = name  # argparse: "invalid <name> value"
    return parse


_positive_int = ranged(int, lambda v: v >= 1, ">= 1", "positive integer")
_threshold = ranged(float, lambda v: 0.0 < v < 1.0, "in (0, 1)", "number")


def positive_int(s):
    """An argparse type: an integer >= 1."""
    return _positive_int(s)


def threshold(s):
    """An argparse type: a number in (0, 1)."""
    return _threshold(s)


positive_int.__name__ = "positive integer"   # argparse: "invalid <name> value"
threshold.__name__ = "number"
