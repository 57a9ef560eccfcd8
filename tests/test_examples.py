"""Every script in examples/ runs with --quick (and answers --help) as a subprocess, exit status 0.

Examples that need trained weights skip their work with a message when minifer/fer/weights/minivgg_fer.npz is
missing (that is still exit status 0 with --quick). Outputs go to pytest's temporary folders, never
into docs/ or weights/.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py"))
TIMEOUT = 300  # seconds per script; --quick runs take a few seconds to a minute


def extra_args(script, tmp):
    """Redirect outputs of the scripts that write files by default into ``tmp``."""
    return {"03_augmentation_grid.py": ["--out", str(tmp / "grid.png")],
            "05_train_fer.py": ["--out", str(tmp / "run")],
            "08_gradcam.py": ["--out", str(tmp / "gradcam.png")],
            "figures.py": ["--out-dir", str(tmp / "img")]}.get(script.name, [])


def run(script, *args, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def test_examples_are_there():
    names = {p.name for p in EXAMPLES}
    for n in ("01_gradient_check.py", "02_tiny_cnn.py", "05_train_fer.py", "06_predict_photos.py",
              "07_video_demo.py", "08_gradcam.py", "09_kernel_speed.py", "figures.py"):
        assert n in names
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    for p in EXAMPLES:
        assert p.name in readme, f"examples/README.md does not list {p.name}"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_help(script, tmp_path):
    r = run(script, "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--quick" in r.stdout


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_quick(script, tmp_path):
    r = run(script, "--quick", *extra_args(script, tmp_path), cwd=tmp_path)
    assert r.returncode == 0, f"{script.name} --quick failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    assert r.stdout.strip(), f"{script.name} printed nothing"
    if script.name == "figures.py":
        assert (tmp_path / "img" / "im2col.png").stat().st_size > 1000
    if script.name == "03_augmentation_grid.py":
        assert (tmp_path / "grid.png").is_file()
    assert not any(tmp_path.glob("*.npz")), "a --quick run left weights in the working folder"


def test_gradient_check_table_reports_every_layer(tmp_path):
    import minifer.layers
    r = run(ROOT / "examples" / "01_gradient_check.py", "--quick", cwd=tmp_path)
    layers = [n for n in minifer.layers.__all__ if n[0].isupper() and n not in ("Layer", "Parameter", "LAYERS")]
    for name in layers:
        assert name in r.stdout, f"01_gradient_check.py does not check {name}"
    assert "all gradients agree" in r.stdout


def test_tiny_cnn_loss_goes_down(tmp_path):
    r = run(ROOT / "examples" / "02_tiny_cnn.py", "--quick", "--synthetic", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    losses = [float(line.split("mean training loss ")[1].split(",")[0])
              for line in r.stdout.splitlines() if line.startswith("epoch ")]
    assert len(losses) >= 3 and losses[-1] < losses[0]


def test_train_example_prints_the_recipe(tmp_path):
    r = run(ROOT / "examples" / "05_train_fer.py", "--dry-run", "--", "--mixup", "0.2", cwd=tmp_path)
    assert r.returncode == 0
    for opt in ("-m minifer.train", "--model minivgg", "--lr 0.05", "--label-smoothing 0.1",
                "--augment standard", "--mixup 0.2"):
        assert opt in r.stdout
