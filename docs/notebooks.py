"""Every chapter of docs/ as a Jupyter notebook, converted from its Markdown (the one source) by jupytext.

    pip install -e ".[notebooks]"                 # jupytext, nbclient, ipykernel, JupyterLab
    python docs/notebooks.py --open 05            # writes notebooks/*.ipynb, opens chapter 5 in JupyterLab
    python docs/notebooks.py --out DIR            # writes the notebooks into DIR instead

A chapter's ```python blocks become its code cells, in order; ```python no-run, ```bash and every
other block stay in the text, shown and not run: the rule of tests/test_docs.py, which executes
these notebooks with a real kernel. Pictures under img/ are attached to their cell, so they show
inline wherever the notebook is opened; links to other chapters point to their notebooks, other
links are made relative to the notebooks' folder. The notebooks are generated, not kept (the
folder notebooks/ is ignored by git, and what the chapters' code writes lands there too): edit the
Markdown.
"""
import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUT = DOCS.parent / "notebooks"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# jupytext takes a notebook's language from its first code block unless a header names it
HEADER = "---\njupyter:\n  kernelspec:\n" + "".join(f"    {k}: {v}\n" for k, v in KERNEL.items()) + "---\n\n"
MAGIC = re.compile(r"^%%(\w+)\n")                       # jupytext writes a ```bash block as a %%bash cell
IMAGE = re.compile(r"!\[([^\]]*)\]\((img/[^)\s]+\.png)\)")
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)#\s:]+)(#[^)\s]*)?\)")


def chapters(docs=DOCS):
    """The Markdown files of ``docs`` with at least one runnable ```python block, in order."""
    return [p for p in sorted(docs.glob("*.md"))
            if re.search(r"^```python[ \t]*$", p.read_text(encoding="utf-8"), re.M)]


def notebook(md, out_dir=OUT):
    """The notebook of chapter ``md`` (a path), for writing into ``out_dir``: an nbformat v4 node."""
    import jupytext
    import nbformat

    nb = jupytext.reads(HEADER + md.read_text(encoding="utf-8"), fmt="md")
    names = {p.name for p in chapters(md.parent)}
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            magic = MAGIC.match(cell.source)
            lang = magic.group(1) if magic else "python"
            code = cell.source[magic.end():] if magic else cell.source
            if lang == "python" and not cell.metadata:  # a ```python block: run it
                cells.append(nbformat.v4.new_code_cell(code))
                continue
            info = lang + (" " + cell.metadata.get("incorrectly_encoded_metadata", "")).rstrip()
            cell = nbformat.v4.new_markdown_cell(f"```{info}\n{code}\n```")     # shown, not run
        if cells and cells[-1].cell_type == "markdown" and cell.cell_type == "markdown":
            cells[-1].source += "\n\n" + cell.source
        else:
            cells.append(nbformat.v4.new_markdown_cell(cell.source))
    for cell in cells:
        if cell.cell_type == "markdown":
            _attach_images(cell, md.parent)
            cell.source = LINK.sub(lambda m: _link(m, md.parent, Path(out_dir), names), cell.source)
    out = nbformat.v4.new_notebook(cells=cells)
    out.metadata.kernelspec = KERNEL
    out.metadata.language_info = {"name": "python"}
    return out


def _attach_images(cell, docs):
    """``![alt](img/x.png)`` -> ``![alt](attachment:x.png)``, with the picture inside the cell."""
    def attach(m):
        path = docs / m.group(2)
        if not path.is_file():                          # made by a training run that has not happened
            return m.group(0)
        cell.setdefault("attachments", {})[path.name] = {
            "image/png": base64.b64encode(path.read_bytes()).decode("ascii")}
        return f"![{m.group(1)}](attachment:{path.name})"
    cell.source = IMAGE.sub(attach, cell.source)


def _link(m, docs, out_dir, names):
    """A relative link of a chapter, made to work from ``out_dir``: chapters -> their notebooks."""
    text, target, anchor = m.group(1), m.group(2), m.group(3) or ""
    if target in names:
        target = target[:-3] + ".ipynb"
    elif (docs / target).exists():
        target = os.path.relpath(docs / target, out_dir).replace(os.sep, "/")
    return f"[{text}]({target}{anchor})"


def write_all(out_dir=OUT):
    """Write every chapter's notebook into ``out_dir`` -> the paths written."""
    import nbformat

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for md in chapters():
        path = out_dir / (md.stem + ".ipynb")
        tmp = path.with_suffix(".ipynb.tmp")
        nbformat.write(notebook(md, out_dir), str(tmp))
        os.replace(tmp, path)                           # atomic: a reader never sees half a notebook
        written.append(path)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(OUT), help="folder for the notebooks (default: notebooks/ "
                                                   "beside docs/)")
    p.add_argument("--open", metavar="CHAPTER", help="then open this chapter in JupyterLab: its number "
                                                     "(05) or its file name")
    args = p.parse_args(argv)
    try:
        written = write_all(args.out)
    except ImportError as e:
        sys.exit(f"error: {e.name} is missing: pip install -e \".[notebooks]\"")
    print(f"{len(written)} notebooks in {args.out}")
    if args.open:
        found = [w for w in written if w.stem.startswith(args.open) or w.name == args.open]
        if len(found) != 1:
            sys.exit(f"error: --open {args.open}: expected one chapter, found {[w.name for w in found]}")
        if shutil.which("jupyter") is None:
            sys.exit("error: jupyter is not installed: pip install -e \".[notebooks]\"")
        return subprocess.call(["jupyter", "lab", str(found[0])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
