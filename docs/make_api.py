"""Write docs/api.md from the source: every public function and class, its signature
and the first line of its docstring.

    python docs/make_api.py          # rewrites docs/api.md
    python docs/make_api.py --check  # exit 1 if docs/api.md is out of date

The modules are read with ``ast``, not imported, so CuPy-only modules
(``gpu_kernels``) are documented on machines without a GPU. Names without a
docstring take their line from ``DESCRIBE`` below; a missing line is an error.
"""
import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "minifer"
OUT = ROOT / "docs" / "api.md"

# (section title, source files relative to minifer/, intro); optional modules are skipped when absent.
SECTIONS = [
    ("minifer.backend", ["backend.py"], None),
    ("minifer.layers", ["layers/base.py", "layers/conv.py", "layers/dense.py", "layers/activation.py",
                        "layers/norm.py", "layers/pool.py", "layers/loss.py"],
     "Every layer has `forward(x)`, `backward(dout)`, `config()`, `output_shape(in_shape)` and "
     "`flops(in_shape)` (see `Layer`); only other methods are listed per class. Layout NHWC, float32.\n\n"
     "- `LAYERS` — `{class name: class}` of every layer, filled automatically by `Layer.__init_subclass__`; "
     "`load_model` uses it to rebuild a model from the architecture stored in a weights file."),
    ("minifer.model", ["model.py"], None),
    ("minifer.io", ["io.py"], None),
    ("minifer.optim", ["optim.py"], "Every optimizer has `step()`, `zero_grad()`, `state_dict()`, "
                                    "`load_state_dict(arrays, scalars)` (see `Optimizer`)."),
    ("minifer.schedules", ["schedules.py"], "Every schedule has `step(value=None)` -> new lr, "
                                            "`state_dict()`, `load_state_dict(d)` (see `Schedule`)."),
    ("minifer.kernels", ["kernels.py"], None),
    ("minifer.fast_kernels", ["fast_kernels.py"], None),
    ("minifer.gpu_kernels", ["gpu_kernels.py"], "Imported only on the GPU (needs CuPy)."),
    ("minifer.gradcheck", ["gradcheck.py"], None),
    ("minifer.zoo", ["zoo.py"], None),
    ("minifer.fer.data", ["data.py"], None),
    ("minifer.fer.augment", ["augment.py"], None),
    ("minifer.fer.metrics", ["metrics.py"], None),
    ("minifer.fer.explain", ["explain.py"], None),
    ("minifer.fer.transfer", ["transfer.py"], None),
    ("minifer.fer.images", ["images.py"], None),
    ("minifer.fer.faces", ["faces.py"], None),
    ("minifer.convert", ["convert.py"],
     "Also importable from here: `ConvertError`, `read_onnx`, `read_keras_h5` and `read_torch`, "
     "defined in `minifer.formats` (next section)."),
    ("minifer.formats", ["formats/__init__.py", "formats/errors.py", "formats/onnx.py",
                         "formats/keras_h5.py", "formats/torch_pickle.py"], None),
    ("minifer.train", ["train.py"], "The library side of `python -m minifer.train` (see tutorial 09)."),
    ("minifer.evaluate", ["evaluate.py"], None),
    ("minifer.predict", ["predict.py"], "The library side of `python -m minifer.predict`."),
]
# Modules whose classes list no methods (their methods are covered by a base class or the CLI).
PROTOCOL_METHODS = {"forward", "backward", "config", "output_shape", "flops", "step", "zero_grad",
                    "state_dict", "load_state_dict", "update", "lr_at"}
# predict.py is mostly the command line; only these names are library API.
ONLY = {"minifer.train": {"parse_args", "train", "main", "Checkpoint", "evaluate", "plot_curves"},
        "minifer.predict": {"Predictor", "resolve_weights", "default_weights_paths", "top_labels",
                            "annotate_image", "main"}}

DESCRIBE = {
    "ReLU": "Rectified linear unit, `max(x, 0)`.",
    "Dense": "Fully connected layer: `out = x @ W + b`, x (N, D), W (D, F).",
    "log_softmax": "Row-wise `z - logsumexp(z)`, computed stably (max subtracted first).",
    "softmax": "Row-wise softmax of logits (N, K), computed stably.",
    "Sequential.forward": "Run every layer in order (also `model(x)`).",
    "Sequential.train": "Training mode for every layer (dropout on, batch statistics).",
    "Sequential.eval": "Evaluation mode (dropout off, batch-norm running statistics).",
    "Sequential.named_params": "Yield `(\"layer/param\", Parameter)` pairs.",
    "Sequential.params": "All `Parameter`s, in layer order (what optimizers take).",
    "Sequential.num_params": "Number of parameter values (`trainable_only=True`: unfrozen only).",
    "Sequential.load_state_dict": "Load `layer/param` arrays; `WeightsError` on missing/extra keys or bad shapes.",
    "Sequential.architecture": "The layer list as JSON-able dicts (type, name, config).",
    "Sequential.flops": "Forward FLOPs for one image (multiply-add = 2).",
    "Parameter.shape": "Shape of `data`.",
    "Parameter.size": "Number of values in `data`.",
    "Layer.trainable": "True if any parameter is trainable (property).",
    "Layer.freeze": "Freeze (or with `frozen=False` unfreeze) every parameter of the layer.",
    "Optimizer": "Base class: holds the parameter list, lr, weight decay, step count and per-parameter buffers.",
    "SGD": "SGD with momentum, optional Nesterov, L2 weight decay added to the gradient.",
    "Adam": "Adam with bias correction; weight decay added to the gradient (L2).",
    "AdamW": "Adam with decoupled weight decay (`w -= lr * wd * w`).",
    "Schedule": "Base class: `step()` advances `t` and sets `optimizer.lr = lr_at(t)`.",
    "Constant": "Keep the learning rate unchanged.",
    "StepLR": "`lr = base * gamma ** floor(t / step_size)`.",
    "CosineLR": "Linear warm-up, then cosine decay from the base lr to `min_lr` over `total` steps.",
    "make_schedule": "Schedule by name (`cosine`, `step`, `plateau`, `constant`) with per-epoch defaults.",
    "fast_kernels.im2col": "Numba im2col, parallel over images (same result as `kernels.im2col_ref`).",
    "fast_kernels.col2im": "Numba col2im, parallel over images, no atomics needed.",
    "maxpool_forward": "Numba max-pool: output and the flat `h*w` index of each maximum.",
    "maxpool_backward": "Numba max-pool backward: route each gradient to its argmax.",
    "fast_kernels.batchnorm_backward": "Fused batch-norm backward: (dx, dgamma, dbeta).",
    "gpu_kernels.im2col": "CuPy im2col: one CUDA thread per element of `cols`.",
    "gpu_kernels.col2im": "CuPy col2im: one CUDA thread per input value, gathering (no atomics).",
    "minivgg": "The project's FER network (6 conv + BN + ReLU, 3 max-pools, dense 256, dropout, dense 7).",
    "build": "Build a zoo model by name (`minivgg`, `vgg16`).",
    "Compose.__call__": "Apply the steps in order to a batch.",
    "layers.batchnorm_backward": "Reference batch-norm backward: dout, cache -> (dx, dgamma, dbeta).",
    "layers.maxpool_backward_ref": "Reference max-pool backward: each gradient goes to its window's argmax tap.",
    "SoftmaxCrossEntropy.__call__": "Mean (or class-weighted) cross-entropy of logits (N, K) and labels (N,) "
                                    "or soft targets (N, K).",
    "SoftmaxCrossEntropy.backward": "dL/dlogits = w_n (p - q) / sum(w), for the last call.",
    "model.Sequential": "A list of layers run forward in order and backward in reverse.",
    "Optimizer.step": "Update every trainable parameter that has a gradient; advances `t`.",
    "Optimizer.zero_grad": "Set every gradient to None.",
    "Optimizer.load_state_dict": "Restore buffers and scalars saved by `state_dict` (checkpoints).",
    "Optimizer.update": "One parameter's update rule (each subclass implements it).",
    "Schedule.step": "Advance one step (or epoch) and set `optimizer.lr`; returns the new lr.",
    "Schedule.lr_at": "The learning rate after `t` steps (each subclass implements it).",
    "Schedule.state_dict": "Step count and base lr (for checkpoints).",
    "Schedule.load_state_dict": "Restore `state_dict` and set the optimizer's lr to match.",
    "gradcheck.rel_error": "max|a - b| / max(max|a|, max|b|): error relative to the gradient's scale.",
    "train.parse_args": "The command-line options of `python -m minifer.train` -> `argparse.Namespace`.",
    "train.train": "Run a whole training from parsed options (resumes with `--resume`); returns the final state.",
    "train.main": "Entry point of `python -m minifer.train` (returns the exit status).",
    "train.plot_curves": "Save loss and accuracy curves (train vs validation, per epoch) as a PNG.",
    "Checkpoint.save": "Write weights, optimizer buffers, schedule and training state atomically.",
    "Checkpoint.load": "Restore model, optimizer and schedule; returns the saved training state.",
    "evaluate.main": "Entry point of `python -m minifer.evaluate` (returns the exit status).",
    "predict.main": "Entry point of `python -m minifer.predict` (returns the exit status).",
}


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


def _doc(node, keys):
    for k in keys:
        if k in DESCRIBE:
            return DESCRIBE[k]
    d = ast.get_docstring(node)
    if d:
        return _first_sentence(d)
    raise SystemExit(f"make_api.py: no docstring and no DESCRIBE entry for {keys[0]}")


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


def section(title, files, intro, all_classes):
    mod = title.split(".")[-1]
    paths = [PKG / f for f in files]
    if not all(p.exists() for p in paths):
        return None
    trees = [ast.parse(p.read_text(encoding="utf-8")) for p in paths]
    head_file = PKG / "layers" / "__init__.py" if title == "minifer.layers" else paths[0]
    head = ast.get_docstring(ast.parse(head_file.read_text(encoding="utf-8"))) or ""
    lines = [f"## {title}", ""]
    src = ", ".join(f"`minifer/{f}`" for f in files)
    lines.append(f"{_first_sentence(head) if head else ''} Source: {src}.".strip())
    if intro:
        lines += ["", intro]
    lines.append("")
    for tree, f in zip(trees, files):
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            if title in ONLY and node.name not in ONLY[title]:
                continue
            where = (f" (in `minifer/{f}`)" if title == "minifer.layers" and isinstance(node, ast.FunctionDef)
                     else "")
            keys = [f"{mod}.{node.name}", node.name]
            if isinstance(node, ast.FunctionDef):
                lines.append(f"- `{node.name}({_sig(node, False)})`{where} — {_doc(node, keys)}")
                continue
            init = _init(node, all_classes)
            if init is None:      # an exception class: no constructor worth showing
                lines.append(f"- `{node.name}` — {_doc(node, keys)}")
            else:
                lines.append(f"- `{node.name}({_sig(init, True)})` — {_doc(node, keys)}")
            for m in node.body:
                if not isinstance(m, ast.FunctionDef):
                    continue
                if m.name == "__call__":
                    name = "__call__"
                elif m.name.startswith("_") or (m.name in PROTOCOL_METHODS and node.name not in
                                                ("Layer", "Sequential", "Optimizer", "Schedule")):
                    continue
                else:
                    name = m.name
                mkeys = [f"{node.name}.{name}"]
                try:
                    d = _doc(m, mkeys)
                except SystemExit:
                    continue                      # undocumented helper method: leave it out
                if name == "__call__":
                    shown = f"obj({_sig(m, True)})"
                else:
                    shown = f".{name}" if _is_property(m) else f".{name}({_sig(m, True)})"
                lines.append(f"  - `{shown}` — {d}")
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

Each prints its options with `--help`.
"""


def render():
    files = [f for _, fs, _ in SECTIONS for f in fs if (PKG / f).exists()]
    all_classes = _classes(ast.parse((PKG / f).read_text(encoding="utf-8")) for f in files)
    parts = ["# API reference", "",
             "Generated by `python docs/make_api.py` from the source (signature and first docstring line of "
             "every public function and class). The tutorial chapters explain how the pieces fit: "
             "[index](index.md).", "", TOP]
    for title, fs, intro in SECTIONS:
        s = section(title, fs, intro, all_classes)
        if s:
            parts.append(s)
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
