"""Write docs/api.md from the source: every public function and class, its signature
and the first line of its docstring.

    python docs/make_api.py          # rewrites docs/api.md
    python docs/make_api.py --check  # exit 1 if docs/api.md is out of date

Every module under ``minifer/`` gets a section, in the order of the layers
(docs/architecture.md); the command lines get a table. The modules are read
with ``ast``, not imported, so CuPy-only modules (``ops/gpu.py``) are
documented on machines without a GPU. A public name without a docstring is an
error.
"""
import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "minifer"
OUT = ROOT / "docs" / "api.md"

# Command-line modules: documented in the table at the end, not as library API.
COMMAND_LINES = ("predict", "train", "evaluate", "convert", "bench", "exercises", "batch")
# Tier order of the sections (docs/architecture.md); modules are found by walking minifer/.
ORDER = ["_version", "backend", "ops", "layers", "model", "io", "optim", "schedules", "gradcheck", "fit", "zoo",
         "averaging", "timing", "formats", "fer", "classroom"]
# Extra notes under a section's heading.
INTRO = {
    "minifer.layers.base": "Every layer has `forward(x)`, `backward(dout)`, `config()`, "
                           "`output_shape(in_shape)` and `flops(in_shape)` (see `Layer`); only other "
                           "methods are listed per class. Layout NHWC, float32.",
    "minifer.optim": "Every optimizer has `step()`, `zero_grad()`, `state_dict()`, "
                     "`load_state_dict(arrays, scalars)` (see `Optimizer`).",
    "minifer.schedules": "Every schedule has `step(value=None)` -> new lr, `state_dict()`, "
                         "`load_state_dict(d)` (see `Schedule`).",
    "minifer.ops.gpu": "Imported only on the GPU (needs CuPy).",
}
# Classes whose protocol methods are listed (elsewhere they are covered by these base classes).
PROTOCOL_METHODS = {"forward", "backward", "config", "output_shape", "flops", "step", "zero_grad",
                    "state_dict", "load_state_dict", "update", "lr_at"}
PROTOCOL_BASES = ("Layer", "Sequential", "Optimizer", "Schedule")


def module_files():
    """``[(module name, path)]`` of every library module, in tier order."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) == 1:
            continue                                   # the package root: its own section (TOP)
        if parts[0] in COMMAND_LINES or parts[-1] == "__main__" or parts[0] == "_version":
            continue
        name = "minifer." + ".".join(p for p in parts if p != "__init__")
        found.append((name, path))
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(found, key=lambda f: (rank.get(f[0].split(".")[1], len(ORDER)), f[0]))


def _sig(fn, drop_self):
    args = fn.args
    if drop_self and args.args and args.args[0].arg in ("self", "cls"):
        args = ast.arguments(posonlyargs=args.posonlyargs, args=args.args[1:], vararg=args.vararg,
                             kwonlyargs=args.kwonlyargs, kw_defaults=args.kw_defaults,
                             kwarg=args.kwarg, defaults=args.defaults)
    return ast.unparse(args)


def _is_property(fn):
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def _md(text):
    """reST-isms of the docstrings -> Markdown: ``x`` -> `x`, :func:`x` -> `x`."""
    text = re.sub(r":(?:mod|func|class|data|meth):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _first_sentence(doc):
    para = " ".join(doc.strip().split("\n\n")[0].split())
    return _md(re.split(r"(?<=[^.]\.)(?<!e\.g\.)(?<!i\.e\.)\s+(?=[A-Z(`])", para)[0].rstrip(".:") + ".")


def _doc(node, where):
    d = ast.get_docstring(node)
    if d:
        return _first_sentence(d)
    raise SystemExit(f"make_api.py: {where} has no docstring")


def _classes(trees):
    return {n.name: n for t in trees for n in t.body if isinstance(n, ast.ClassDef)}


def _init(cls, classes):
    """The __init__ of a class or of its nearest base with one (by simple name)."""
    while cls is not None:
        for n in cls.body:
            if isinstance(n, ast.FunctionDef) and n.name == "__init__":
                return n
        base = cls.bases[0] if cls.bases else None
        cls = classes.get(base.id) if isinstance(base, ast.Name) else None
    return None


def section(title, path, all_classes):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    head = ast.get_docstring(tree) or ""
    src = path.relative_to(ROOT).as_posix()
    lines = [f"## {title}", "", f"{_first_sentence(head) if head else ''} Source: `{src}`.".strip()]
    if title in INTRO:
        lines += ["", INTRO[title]]
    lines.append("")
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
            continue
        where = f"{title}.{node.name}"
        if isinstance(node, ast.FunctionDef):
            lines.append(f"- `{node.name}({_sig(node, False)})` — {_doc(node, where)}")
            continue
        init = _init(node, all_classes)
        if init is None:      # an exception class: no constructor worth showing
            lines.append(f"- `{node.name}` — {_doc(node, where)}")
        else:
            lines.append(f"- `{node.name}({_sig(init, True)})` — {_doc(node, where)}")
        for m in node.body:
            if not isinstance(m, ast.FunctionDef):
                continue
            if m.name != "__call__" and (m.name.startswith("_") or (
                    m.name in PROTOCOL_METHODS and node.name not in PROTOCOL_BASES)):
                continue
            d = ast.get_docstring(m)
            if not d:
                continue                          # an undocumented method is an implementation detail
            if m.name == "__call__":
                shown = f"obj({_sig(m, True)})"
            else:
                shown = f".{m.name}" if _is_property(m) else f".{m.name}({_sig(m, True)})"
            lines.append(f"  - `{shown}` — {_first_sentence(d)}")
    lines.append("")
    return "\n".join(lines)


TOP = """## minifer

`import minifer as mf` (`minifer/__init__.py`) imports NumPy only; the Numba kernels compile (or
load from their on-disk cache) on the first convolution. It gives the most used names directly:

- `Sequential`, `load_model` — from `minifer.model` (`mf.Sequential([...])`, `mf.load_model(path)`).
- `save_npz`, `load_npz`, `WeightsError` — from `minifer.io`.
- every name of `minifer.layers` (`mf.Conv2d`, `mf.Dense`, `mf.SoftmaxCrossEntropy`, ...).
- the modules `mf.backend`, `mf.layers`, `mf.optim`, `mf.schedules`, `mf.zoo`.
- `__version__` — the package version.
"""

CLI = """## Command-line tools

| command | what it does | tutorial |
|---|---|---|
| `python -m minifer.train --data D --out RUN` | train with checkpoints and `--resume`; writes `best.npz`, `last.npz`, `history.csv`, `curves.png` | [09](09_training_and_curves.md) |
| `python -m minifer.evaluate --weights W --data D [--split] [--tta] [--json]` | accuracy, macro-F1, per-class table, confusion matrix | [10](10_evaluation.md) |
| `python -m minifer.predict IMAGE... / --video SOURCE` | emotions of the faces in photos, a video or a camera | [09](09_training_and_curves.md), `examples/06`, `examples/07` |
| `python -m minifer.convert SRC DST.npz` | pretrained VGG16 (ONNX, Keras h5, PyTorch) -> minifer `.npz` | [11](11_transfer_learning.md) |
| `python -m minifer.bench` | throughput, latency, per-layer time split (and the same network in PyTorch, when importable) | [13](13_performance.md) |
| `python -m minifer.exercises start\\|check\\|grade\\|solve` | graded exercises cut from the library's code: a student's folder, its checks, a class's grades | [learners](exercises_learners.md), [instructors](exercises_instructors.md) |
| `python -m minifer.batch INPUT... --out DIR [--address auto]` | emotions of the faces in thousands of photos and hours of video, on every core of a machine or a Ray cluster, into Parquet; a rerun does what is left | [batch on Ray](batch_on_ray.md) |

Each prints its options with `--help`.
"""


def render():
    mods = module_files()
    all_classes = _classes(ast.parse(p.read_text(encoding="utf-8")) for _, p in mods)
    parts = ["# API reference", "",
             "Generated by `python docs/make_api.py` from the source (signature and first docstring line of "
             "every public function and class). The tutorial chapters explain how the pieces fit: "
             "[index](index.md).", "", TOP]
    for title, path in mods:
        parts.append(section(title, path, all_classes))
    parts.append(CLI)
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is out of date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        ok = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("docs/api.md is up to date" if ok else "docs/api.md is out of date")
        return 0 if ok else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
