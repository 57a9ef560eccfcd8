"""Exercise files cut out of minifer's own source, where each solution is marked once::

    def backward(self, dout):
        (x, out), self.cache = self.cache, None
        # exercise: dense_backward                  <- a marker line: the comment alone
        self.params["W"].grad = x.T @ dout          <- the lines a student writes
        ...
        # end exercise                              <- the other one

Every function holding a marked region is copied from the library module, word for word, into
the exercise's file (a method into a subclass of its library class, so everything else the class
does stays the library's). The student's copy has each region replaced by a TODO and
``raise NotImplementedError``; the solution's copy keeps it and drops only the marker lines. So an
exercise and the library never drift apart: changing the library changes both files.
"""
import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"^(\s*)# exercise: (\w+)\s*$")
END = re.compile(r"^\s*# end exercise\s*$")


class MarkError(ValueError):
    """The markers of a library module are not well formed (unpaired, nested, outside a function)."""


def regions(path):
    """``{name: [(first line, last line)]}`` of the marked regions of a file, 1-based, markers included."""
    found, start = {}, None
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        begin = BEGIN.match(line)
        if begin:
            if start:
                raise MarkError(f"{path}:{i}: exercise {begin.group(2)} begins inside {start[1]}")
            start = (i, begin.group(2))
        elif END.match(line):
            if not start:
                raise MarkError(f"{path}:{i}: '# end exercise' without a beginning")
            found.setdefault(start[1], []).append((start[0], i))
            start = None
    if start:
        raise MarkError(f"{path}:{start[0]}: exercise {start[1]} has no '# end exercise'")
    return found


def module_path(module):
    """``"minifer.ops.reference"`` -> its file."""
    return PKG.joinpath(*module.split(".")[1:]).with_suffix(".py")


def _functions(tree, spans):
    """``[(class name or None, function node, its spans)]`` holding the spans, in source order
    (a span's end marker may come after the function's last statement)."""
    out = []
    for top in tree.body:
        inner = top.body if isinstance(top, ast.ClassDef) else [top]
        for node in inner:
            mine = [(a, b) for a, b in spans if node.lineno < a <= node.end_lineno]
            if isinstance(node, ast.FunctionDef) and mine:
                out.append((top.name if isinstance(top, ast.ClassDef) else None, node, mine))
    return out


def _imports(tree, module, used, defined):
    """Import lines for the module-level names of ``module`` that the copied code uses."""
    package = module.rsplit(".", 1)[0]
    lines, own = ["import numpy as np"], []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a for a in node.names if (a.asname or a.name).split(".")[0] in used]
            lines += [f"import {a.name}" + (f" as {a.asname}" if a.asname else "") for a in names]
        elif isinstance(node, ast.ImportFrom):
            names = [a for a in node.names if (a.asname or a.name) in used]
            parts = package.split(".")                  # a relative import made absolute
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            source = ".".join(p for p in (base, node.module) if p)
            if names:
                lines.append(f"from {source} import " + ", ".join(
                    a.name + (f" as {a.asname}" if a.asname else "") for a in names))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in used - defined:
            own.append(node.name)
        elif isinstance(node, ast.Assign):
            own += [t.id for t in node.targets if isinstance(t, ast.Name) and t.id in used - defined]
    if own:
        lines.append(f"from {module} import " + ", ".join(own))
    return list(dict.fromkeys(lines))


def exercise_code(name, module, solution):
    """The code of exercise ``name`` (marked in ``module``): imports, then every function that
    holds one of its regions, solved or (``solution=False``) with each region left to write."""
    path = module_path(module)
    spans = regions(path).get(name)
    if not spans:
        raise MarkError(f"{path}: no '# exercise: {name}' marker")
    text = path.read_text(encoding="utf-8")
    lines, tree = text.splitlines(), ast.parse(text)
    funcs = _functions(tree, spans)
    if sum(len(mine) for *_, mine in funcs) != len(spans):
        raise MarkError(f"{path}: a '# exercise: {name}' region is not inside a function")
    used = {n.id for _, f, _ in funcs for n in ast.walk(f) if isinstance(n, ast.Name)}
    defined = {f.name for cls, f, _ in funcs if cls is None}
    body, current = [], None
    for cls, f, mine in funcs:
        if cls != current and cls:
            body += ["", "", f"class {cls}(library.{cls}):",
                     f'    """minifer\'s {cls}, with the code of this exercise written by you."""']
        elif cls is None:
            body.append("")
        current = cls
        first = min([f.lineno] + [d.lineno for d in f.decorator_list])
        body += [""] + _fill(lines, first, max(f.end_lineno, mine[-1][1]), mine, name, solution)
    head = _imports(tree, module, used, defined)
    if any(cls for cls, _, _ in funcs):
        head.append(f"import {module} as library")
    return "\n".join(head) + "\n" + "\n".join(body).rstrip() + "\n"


def _fill(lines, first, last, spans, name, solution):
    """Source lines ``first..last`` (1-based) with each marked span solved or left as a TODO."""
    out, i = [], first
    for a, b in spans:
        out += lines[i - 1:a - 1]
        indent = BEGIN.match(lines[a - 1]).group(1)
        if solution:
            out += lines[a:b - 1]
        else:
            n = sum(1 for s in lines[a:b - 1] if s.strip() and not s.strip().startswith("#"))
            out += [f"{indent}# TODO ({name}): write this part ({n} line{'s' * (n != 1)} in minifer's solution)",
                    f'{indent}raise NotImplementedError("{name}")']
        i = b + 1
    return out + lines[i - 1:last]
