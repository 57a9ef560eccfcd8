"""The recognizer's models by name: which weights file each name means, and its scores.

    python -m minifer.predict photo.jpg --model fer2013      # or --weights FILE
    python -m minifer.predict --model list                   # the names, with the card's scores

The catalog is ``minifer/fer/weights/models.json``: for each name, the file, where it
lives (``package``: shipped in ``minifer/fer/weights/``, in the wheel too;
``repository``: in the checkout's ``weights/`` folder, not in the wheel), the labels it
learned (``fer2013`` or ``ferplus``), one line about it, and the scores the model card
(``weights/README.md``) gives it on PublicTest. ``"default"`` names the model every tool
uses when given neither ``--model`` nor ``--weights``.
"""
import argparse
import json
from importlib import resources
from pathlib import Path

CATALOG_FILE = "models.json"
SCORE_COLUMNS = (("fer2013_accuracy", "FER2013"), ("crowd_accuracy", "crowd"),
                 ("clear_named", "clear"), ("crowd_share", "share"), ("ece", "ECE"))


class CatalogError(ValueError):
    """An unknown model name, or a named model that this install does not have."""


def weights_dir():
    """The package's weights folder (``minifer/fer/weights/``)."""
    return Path(str(resources.files(__package__).joinpath("weights")))


def catalog():
    """The parsed ``models.json``: ``{"default": name, "models": {name: entry}}``."""
    return json.loads((weights_dir() / CATALOG_FILE).read_text())


def default_name():
    """The name of the model the tools use by default."""
    return catalog()["default"]


def model_path(name=None):
    """The weights file of model ``name`` (default: :func:`default_name`) -> Path;
    :class:`CatalogError` for an unknown name or a file this install lacks."""
    cat = catalog()
    name = name or cat["default"]
    entry = cat["models"].get(name)
    if entry is None:
        raise CatalogError(f"unknown model {name!r}; known: {', '.join(cat['models'])} "
                           f"(--model list shows them)")
    if entry["where"] == "package":
        path = weights_dir() / entry["file"]
    else:                       # the checkout's weights/ folder, beside the package
        path = weights_dir().parents[2] / "weights" / entry["file"]
    if not path.is_file():
        raise CatalogError(f"model {name!r} ({entry['file']}) is not in this install: "
                           + ("the wheel carries the single networks; get it from the repository's "
                              "weights/ folder and pass --weights FILE" if entry["where"] != "package"
                              else f"{path} is missing"))
    return path


class _ModelAction(argparse.Action):
    """``--model NAME``; ``--model list`` prints :func:`format_list` and exits 0, as ``--version`` does."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value == "list":
            print(format_list())
            parser.exit(0)
        setattr(namespace, self.dest, value)


def add_model_options(parser):
    """``--weights FILE`` and ``--model NAME`` (or ``list``) on a command line's parser."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--weights", metavar="FILE", help="a model weights file (.npz)")
    g.add_argument("--model", metavar="NAME", action=_ModelAction,
                   help=f"a model by name (default: {default_name()}); '--model list' lists them with their scores")


def _cells(scores):
    """A model's scores as table cells: percentages with 2 decimals, ECE with 3, '-' when unmeasured."""
    return [("-" if k not in scores else f"{scores[k]:.3f}" if k == "ece" else f"{scores[k] * 100:.2f}")
            for k, _ in SCORE_COLUMNS]


def format_list(markdown=False):
    """The catalog as a table (text, or ``markdown`` as in the model card): name, labels,
    the card's PublicTest scores, what it is."""
    cat = catalog()
    rows = [[name + (" (default)" if name == cat["default"] else ""), e["labels"], *_cells(e.get("scores", {})),
             e["about"]] for name, e in cat["models"].items()]
    head = ["model", "labels", *(t for _, t in SCORE_COLUMNS), "about"]
    if markdown:
        return "\n".join("| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head)] + rows)
    lines = [f"{r[0]:<28}{r[1]:<9}" + "".join(f"{c:>9}" for c in r[2:-1]) + f"  {r[-1]}" for r in [head] + rows]
    lines.append("PublicTest scores from the model card (weights/README.md): FER2013 = accuracy against "
                 "FER2013's labels (%), crowd = against the FER+ crowd majority (%), clear = clear "
                 "expressions named (%), share = crowd share (%), ECE = calibration against the votes.")
    return "\n".join(lines)
