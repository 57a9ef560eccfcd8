"""What ``python -m minifer.batch INPUT...`` names: files, folders, globs and lists of paths.

:func:`expand` turns the arguments into one list of absolute file paths, in order and each once.
A folder is searched recursively for the files whose name says photo or video, or that have no
extension (hidden files and folders are skipped); whether a file *is* a photo or a video is decided
later by its content (:func:`minifer.fer.batch_units.probe`). A pattern with ``*``, ``?`` or ``[``
that names no existing path is a glob (``**`` spans folders). An argument ending in ``.txt``,
``.lst`` or ``.list`` is a list: one path, folder or pattern per line, relative to the list's
folder; blank lines and lines starting with ``#`` are skipped; ``-`` reads the list from stdin.
A file named explicitly is kept even when it is missing or not media: it becomes an input whose
result says so.
"""
import glob
import os
import sys

from .images import IMAGE_EXTENSIONS, iter_image_paths

# Names that say video (the content decides); with IMAGE_EXTENSIONS and "" (no extension), what a
# folder is searched for.
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".wmv", ".flv", ".3gp", ".ogv", ".vob", ".mxf", ".dv",
})
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS | {""}
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
GLOB_CHARS = "*?["


def is_list_file(arg):
    """True for ``-`` and for an argument naming a list of paths (by its extension)."""
    return arg == "-" or os.path.splitext(str(arg))[1].lower() in LIST_EXTENSIONS


def _read_list(arg):
    """The entries of a list file (or of stdin for ``-``) and the folder they are relative to."""
    if arg == "-":
        return sys.stdin.read().splitlines(), os.getcwd()
    with open(arg, encoding="utf-8") as f:
        lines = f.read().splitlines()
    return lines, os.path.dirname(os.path.abspath(arg))


def expand(args):
    """``(files, problems)``: the absolute paths the arguments name, in order and without
    repeats, and ``[(argument, reason)]`` for folders, patterns and lists that name nothing or
    cannot be read."""
    files, problems, seen = [], [], set()

    def add(path):
        path = os.path.abspath(path)
        if path not in seen:
            seen.add(path)
            files.append(path)

    def one(arg):
        if os.path.isdir(arg):
            found = list(iter_image_paths(arg, recursive=True, extensions=MEDIA_EXTENSIONS))
            if not found:
                problems.append((arg, "no photos or videos in this folder"))
            for p in found:
                add(p)
        elif os.path.lexists(arg) or not any(c in arg for c in GLOB_CHARS):
            add(arg)                              # a missing file: its result will say so
        else:
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                problems.append((arg, "no file matches this pattern"))
            for m in matches:
                if os.path.isdir(m):
                    one(m)
                else:
                    add(m)

    for arg in map(str, args):
        if not is_list_file(arg):
            one(arg)
            continue
        try:
            lines, base = _read_list(arg)
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or e
            problems.append((arg, f"cannot read this list of paths ({reason})"))
            continue
        entries = [line.strip() for line in lines]
        entries = [e for e in entries if e and not e.startswith("#")]
        if not entries:
            problems.append((arg, "this list names no paths"))
        for entry in entries:
            one(os.path.join(base, os.path.expanduser(entry)))
    return files, problems
