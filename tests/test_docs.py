"""The tutorial in docs/ runs: every ```python block, file by file; links resolve; api.md is complete.

Runner rules (see docs/index.md):

* every fenced block whose info string is exactly ``python`` is executed, in
  order, in one namespace per Markdown file, with a fresh temporary folder as
  the working directory: a chapter of docs/ as its notebook (docs/notebooks.py),
  cell by cell in a real Jupyter kernel, the README in this process;
* ``python no-run`` blocks (GPU-only code, long trainings) are shown, not run;
* any other language (``bash``, ``text``) is never run.
"""
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MD_FILES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]   # the README runs from the repository root
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)

# Pictures that appear only after a full training / evaluation run (see docs/index.md).
MADE_BY_TRAINING = {"img/curves.png", "img/confusion.png", "img/filters.png", "img/gradcam.png"}


def code_blocks(path):
    """[(info, first line number, source)] for every fenced block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start(2)) + 1
        out.append((m.group(1).strip(), line, m.group(2)))
    return out


def test_the_tutorial_is_there():
    names = {p.name for p in MD_FILES}
    expected = {"index.md", "api.md"} | {f"{i:02d}_" for i in range(1, 14)}
    for e in expected:
        assert any(n.startswith(e) if e.endswith("_") else n == e for n in names), e


def _load(name):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_notebook(md, blocks, cwd):
    """Execute the notebook of chapter ``md`` cell by cell in a fresh kernel, in folder ``cwd``;
    ``blocks``: the chapter's python blocks [(line, source)], which must be its code cells."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = _load("notebooks").notebook(md)
    cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert [c.source for _, c in cells] == [src.rstrip("\n") for _, src in blocks], \
        f"{md.name}: the notebook's code cells are not the chapter's python blocks"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    with client.setup_kernel():
        for (i, cell), (line, _) in zip(cells, blocks):
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as e:
                raise AssertionError(f"{md.name}, code block at line {line} failed in the notebook: "
                                     f"{e.ename}: {e.evalue}") from None


@pytest.mark.parametrize("md", MD_FILES, ids=lambda p: p.name)
def test_python_blocks_run(md, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT if md.name == "README.md" else tmp_path)
    blocks = []
    for info, line, src in code_blocks(md):
        assert info in ("python", "python no-run", "bash", "text", "console", ""), \
            f"{md.name}:{line}: unknown code block language {info!r}"
        if info == "python":
            blocks.append((line, src))
    if md.parent == DOCS and blocks:
        monkeypatch.delenv("MPLBACKEND", raising=False)         # the kernel draws inline, as for a learner
        run_notebook(md, blocks, tmp_path)
        return
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns = {"__name__": "__docs__"}
    ran = 0
    for line, src in blocks:
        code = compile(src, f"{md.name}:{line}", "exec")
        try:
            exec(code, ns)
        except Exception as e:
            raise AssertionError(f"{md.name}, code block at line {line} failed: "
                                 f"{type(e).__name__}: {e}") from e
        ran += 1
    if md.name not in ("index.md", "api.md", "README.md") or md.parent == ROOT:
        assert ran > 0, f"{md.name} has no runnable python block"


@pytest.mark.parametrize("md", MD_FILES, ids=lambda p: p.name)
def test_relative_links_resolve(md):
    text = FENCE.sub("", md.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
            continue
        if target in MADE_BY_TRAINING:
            continue
        assert (md.parent / target).exists(), f"{md.name}: broken link {target}"


def test_every_chapter_is_a_notebook_with_its_pictures_and_working_links(tmp_path):
    notebooks = _load("notebooks")
    names = {p.name for p in notebooks.chapters()}
    assert {f"{i:02d}_" for i in range(1, 16)} <= {n[:3] for n in names} and "api.md" not in names
    written = notebooks.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(n[:-3] + ".ipynb" for n in names)
    import nbformat
    attached = 0
    for path in written:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for name in re.findall(r"\]\(attachment:([^)]+)\)", cell.source):
                assert cell.attachments[name]["image/png"], f"{path.name}: {name} not attached"
                attached += 1
            for target in re.findall(r"\]\(([^)#\s:]+)(?:#[^)]*)?\)", cell.source):
                assert target in MADE_BY_TRAINING or (tmp_path / target).exists(), f"{path.name}: broken link {target}"
    assert attached >= 2                                        # im2col.png, augmentation_grid.png, ...


# ---- api.md names every public name ---------------------------------------------------
def _make_api():
    return _load("make_api")


def library_modules():
    """Every library module of the package (command lines excluded), as docs/make_api.py finds them."""
    return [name for name, _ in _make_api().module_files()]


def test_api_reference_is_up_to_date_and_every_public_name_has_a_docstring():
    """make_api.py stops on a public function or class without a docstring."""
    text = _make_api().render()
    assert (DOCS / "api.md").read_text(encoding="utf-8") == text, "python docs/make_api.py rebuilds docs/api.md"


def public_names(modname):
    """Public functions and classes defined in module ``modname`` (generated, not listed by hand)."""
    mod = importlib.import_module(modname)
    return [n for n, o in vars(mod).items()
            if not n.startswith("_") and callable(o) and getattr(o, "__module__", None) == mod.__name__]


def api_sections():
    """{"minifer.optim": text of that section, ...} from the ``## minifer.x`` headings of api.md."""
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    parts = re.split(r"^## +`?(minifer(?:\.\w+)*)`?.*$", api, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_api_reference_is_complete():
    mods = [m for m in library_modules() if m != "minifer.ops.gpu"]     # needs CuPy to import
    assert {"minifer.ops.cpu", "minifer.layers.conv", "minifer.model", "minifer.fer.predictor"} <= set(mods)
    sections = api_sections()
    missing = [f"{m}.{n}" for m in mods for n in public_names(m)
               if not re.search(rf"`{re.escape(n)}\b", sections.get(m, ""))]
    assert not missing, f"docs/api.md does not document: {missing} (python docs/make_api.py rebuilds it)"
    top = sections.get("minifer", "")
    for n in ("Sequential", "load_model", "save_npz", "load_npz"):
        assert f"`{n}" in top, f"docs/api.md: the minifer section does not list {n}"
