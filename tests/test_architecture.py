"""The layering stays true: imports go one way, no cycles, thin command lines,
no change to the host process at import (see docs/architecture.md)."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "minifer"

# backend -> ops -> layers -> model tier -> application -> command lines
TIERS = [
    ("backend", "_version"),
    ("ops",),
    ("layers",),
    ("model", "io", "optim", "schedules", "gradcheck", "zoo", "averaging", "folding", "formats",
     "timing", "fit"),
    ("fer", "classroom"),
    ("predict", "train", "evaluate", "convert", "bench", "serve", "exercises", "batch"),
]
COMMAND_LINES = set(TIERS[-1])
# minifer.detect_emotions / EmotionRecognizer: imported by the package root's __getattr__ only
ROOT_LAZY_API = {"minifer.fer.recognizer", "minifer.fer"}
# the variables a clean environment has none of (as minifer.timing.clean_env)
THREAD_VARIABLES = ("OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "NUMBA_", "GOTO_", "VECLIB_", "MINIFER_")


def module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def tier(mod):
    """Tier of a module ``minifer.x.y``; the package root ``minifer`` has none."""
    parts = mod.split(".")
    if len(parts) < 2:
        return None
    for i, names in enumerate(TIERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{mod} is in no tier: add it to TIERS and to docs/architecture.md")


def resolve(mod, is_pkg, node):
    """Absolute names a (possibly relative) import node brings in."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    if node.level:
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


def imports_of(path, known):
    """Every minifer module a file imports, at module level or inside functions.

    ``from pkg import name`` counts ``pkg.name`` when that is a module, and ``pkg``
    itself only when some name is an attribute of it."""
    mod = module_name(path) if path.is_relative_to(PKG) else "__script__"
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = resolve(mod, path.name == "__init__.py", node)
            if isinstance(node, ast.ImportFrom):
                prefix, subs = names[0], [n for n in names[1:] if n in known]
                names = subs + ([prefix] if len(subs) < len(names) - 1 else [])
            found |= {n for n in names if n in known}
    return found


def package_graph():
    files = sorted(PKG.rglob("*.py"))
    known = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, known) - {module_name(f)} for f in files}, known


def test_imports_go_one_way():
    graph, _ = package_graph()
    bad = []
    for mod, deps in graph.items():
        if mod == "minifer":            # the package root re-exports the framework, and the
            bad += [f"minifer -> {d}" for d in deps   # application's one-call API on first use
                    if tier(d) is not None and tier(d) > 3 and d not in ROOT_LAZY_API]
            continue
        for d in deps:
            if d == "minifer":
                bad.append(f"{mod} -> minifer (the package root imports everything)")
            elif tier(d) > tier(mod):
                bad.append(f"{mod} -> {d}")
    assert not bad, "upward imports: " + ", ".join(sorted(bad))


def test_no_import_cycles():
    graph, _ = package_graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_command_lines_are_thin_and_used_by_nobody():
    graph, known = package_graph()
    clis = {f"minifer.{c}" for c in COMMAND_LINES} & known
    assert clis, "no command-line modules found"
    for c in clis:
        n = len((PKG / (c.split(".")[1] + ".py")).read_text().splitlines())
        assert n <= 300, f"{c} has {n} lines (a command line parses, writes output, sets exit codes)"
        users = [m for m, deps in graph.items() if c in deps and m != c]
        assert not users, f"{c} is a command line, but {users} import it"
    scripts = [p for d in ("examples", "benchmarks", "scripts", "docs") for p in (ROOT / d).rglob("*.py")]
    for p in scripts:
        used = imports_of(p, known) & clis
        assert not used, f"{p.relative_to(ROOT)} imports command-line modules {sorted(used)}"


def test_framework_never_imports_the_application():
    graph, _ = package_graph()
    for mod, deps in graph.items():
        if mod != "minifer" and tier(mod) <= 3:
            assert not [d for d in deps if d.startswith("minifer.fer")], mod


IMPORT_ALL = r"""
import importlib, json, os, pkgutil, sys
import cv2, matplotlib, numba   # third-party libraries may change it at their own import (cv2 does)
before = dict(os.environ)
import minifer
names = [m.name for m in pkgutil.walk_packages(minifer.__path__, "minifer.")
         if m.name != "minifer.ops.gpu"]            # needs CuPy
for name in names:
    importlib.import_module(name)
after = dict(os.environ)
print(json.dumps({"changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
                  "modules": names, "heavy": sorted(m for m in ("torch", "tensorflow", "jax") if m in sys.modules)}))
"""


def test_importing_any_module_leaves_the_environment_alone():
    env = {k: v for k, v in os.environ.items() if not k.startswith(THREAD_VARIABLES) and k != "OPENCV_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(res["modules"]) > 20
    assert res["changed"] == [], f"importing minifer changed os.environ: {res['changed']}"
    assert res["heavy"] == []


TRAIN_AND_PREDICT = r"""
import json, os
import cv2, matplotlib, numba   # third-party libraries may change it at their own import (cv2 does)
before = dict(os.environ)
import numpy as np
import minifer
from minifer import backend, optim, zoo
from minifer.layers import SoftmaxCrossEntropy
blas = backend.openblas_function("get_num_threads")
threads = blas() if blas else None
model = zoo.minivgg(seed=0)                      # the loop of docs/09, with nothing set up first
opt = optim.SGD(model.params(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
loss = SoftmaxCrossEntropy()
rng = np.random.default_rng(0)
x, y = rng.standard_normal((16, 48, 48, 1), dtype=np.float32), rng.integers(0, 7, 16)
loss(model.forward(x), y)
model.backward(loss.backward())
opt.step()
model.eval()
model.forward(x[:1])
model.predict_proba(x)
faces = minifer.detect_emotions("examples/images/astronaut.jpg")
after = dict(os.environ)
from numba.np.ufunc import parallel
print(json.dumps({"changed": sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)),
                  "faces": len(faces), "workers": backend._workers is not None,
                  "numba_pool": parallel._is_initialized, "blas": [threads, blas() if blas else None]}))
"""


def test_a_training_step_and_a_prediction_leave_the_environment_alone():
    """A user's script, in a fresh process with a clean environment: a training step, a prediction
    and a photo's emotions change no environment variable, start minifer's worker threads and not
    Numba's thread pool, and leave OpenBLAS's thread count as they found it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(THREAD_VARIABLES)}
    out = subprocess.run([sys.executable, "-c", TRAIN_AND_PREDICT], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["changed"] == [], f"minifer changed os.environ: {res['changed']}"
    assert res["faces"] >= 1
    assert res["workers"] == (len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else True)
    assert res["numba_pool"] is False
    assert res["blas"][0] == res["blas"][1]


@pytest.mark.parametrize("tiers_doc", ["docs/architecture.md"])
def test_architecture_doc_names_every_tier(tiers_doc):
    text = (ROOT / tiers_doc).read_text()
    for names in TIERS:
        for n in names:
            if n != "_version":
                assert f"`{n}" in text, f"{tiers_doc} does not mention `{n}`"


def test_import_minifer_is_light():
    """``import minifer`` loads NumPy only: Numba, OpenCV, plots and the web stack on first use."""
    code = ("import sys, minifer; print(sorted(m for m in ('numba', 'cv2', 'matplotlib', 'PIL', "
            "'starlette', 'uvicorn', 'minifer.fer', 'ray', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
