"""Training smoke tests: loss goes down, resume is exact, bad input is one line, evaluate CLI."""
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minifer import train
from minifer.io import load_npz
from minifer.model import load_model

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fer_npz(tmp_path_factory):
    """A tiny learnable FER-like set: each class has its own bright square."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 7, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 4)
            x[i, 4 + r * 20:16 + r * 20, 2 + col * 11:12 + col * 11] += 150
        return x, y
    xt, yt = make(96)
    xv, yv = make(64)
    path = tmp_path_factory.mktemp("fer") / "tiny.npz"
    np.savez(path, x_train=xt, y_train=yt, x_val=xv, y_val=yv)
    return path


def run(fer_npz, out, *extra):
    return train.main(["--data", str(fer_npz), "--out", str(out), "--batch-size", "32", "--lr", "0.05",
                       "--augment", "none", "--quiet", "--checkpoint-every", "0", *extra])


def test_loss_goes_down_and_outputs_written(fer_npz, tmp_path):
    assert run(fer_npz, tmp_path, "--epochs", "4", "--keep-epochs", "2") == 0
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert hist[-1]["val_acc"] > 0.5
    for f in ["best.npz", "last.npz", "checkpoint.npz", "history.csv", "curves.png"]:
        assert (tmp_path / f).stat().st_size > 0
    m = load_model(tmp_path / "best.npz")
    assert m.meta["preprocess"]["std"][0] > 0 and m.meta["training"]["epochs_done"] >= 1
    kept = sorted(p.name for p in tmp_path.glob("epoch_*.npz"))      # --keep-epochs 2: the last two
    assert kept == ["epoch_003.npz", "epoch_004.npz"]
    assert load_model(tmp_path / "epoch_003.npz").meta["training"]["epochs_done"] == 3


def test_resume_mid_epoch_is_exact(fer_npz, tmp_path):
    args = ["--epochs", "2", "--augment", "standard", "--mixup", "0.2", "--label-smoothing", "0.1"]
    assert run(fer_npz, tmp_path / "a", *args) == 0
    assert run(fer_npz, tmp_path / "b", *args, "--stop-after", "2") == 0       # killed mid-epoch 1
    _, meta = load_npz(tmp_path / "b" / "checkpoint.npz")
    assert meta["epoch"] == 0 and meta["step"] == 2
    assert run(fer_npz, tmp_path / "b", *args, "--stop-after", "2", "--resume") == 0  # into epoch 2
    assert run(fer_npz, tmp_path / "b", *args, "--resume") == 0
    a, _ = load_npz(tmp_path / "a" / "last.npz")
    b, _ = load_npz(tmp_path / "b" / "last.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ha = json.loads((tmp_path / "a" / "history.json").read_text())
    hb = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["val_acc"] for h in ha] == [h["val_acc"] for h in hb]


def test_warm_start_from_a_trained_model(fer_npz, tmp_path):
    """--init with a minifer model file loads every array (a second training stage)."""
    assert run(fer_npz, tmp_path / "a", "--epochs", "2") == 0
    first, _ = load_npz(tmp_path / "a" / "best.npz")
    args = train.parse_args(["--data", str(fer_npz), "--init", str(tmp_path / "a" / "best.npz")])
    model = train.build_model(args, 0.5, 0.25)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, first[k], err_msg=k)
    assert run(fer_npz, tmp_path / "b", "--epochs", "1", "--lr", "0.01",
               "--init", str(tmp_path / "a" / "best.npz")) == 0
    hist = json.loads((tmp_path / "b" / "history.json").read_text())
    assert hist[0]["val_acc"] > 0.5     # starts from the trained weights


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_stops_cleanly(fer_npz, tmp_path, capsys):
    assert run(fer_npz, tmp_path, "--epochs", "1", "--lr", "1e30") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss became" in err[0]


def test_bad_data_is_one_line(tmp_path, capsys):
    assert train.main(["--data", str(tmp_path / "missing.npz"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.npz" in err[0]


def test_class_weights_and_balanced_options(fer_npz, tmp_path):
    assert run(fer_npz, tmp_path, "--epochs", "1", "--class-weights", "0.5", "--balanced",
               "--optimizer", "adamw", "--lr", "0.001", "--schedule", "plateau") == 0


def test_evaluate_cli(fer_npz, tmp_path):
    assert run(fer_npz, tmp_path, "--epochs", "2") == 0
    cmd = [sys.executable, "-m", "minifer.evaluate", "--weights", str(tmp_path / "best.npz"),
           "--data", str(fer_npz), "--split", "val", "--tta", "flip", "--json", "--confusion", str(tmp_path / "cm.png")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "images_per_s"} <= set(rep)
    assert np.array(rep["confusion_matrix"]).sum() == 64 and (tmp_path / "cm.png").stat().st_size > 0
    r = subprocess.run([sys.executable, "-m", "minifer.evaluate", "--weights", str(tmp_path / "nope.npz"),
                        "--data", str(fer_npz)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_distillation_from_a_teacher_file(fer_npz, tmp_path, capsys):
    """A student learns from a trained teacher (a network, or an ensemble file); the
    teacher sees the same augmented faces; a teacher for other classes is one line, exit 2."""
    from minifer.model import Ensemble
    assert run(fer_npz, tmp_path / "t", "--epochs", "2") == 0
    teacher = load_model(tmp_path / "t" / "best.npz")
    Ensemble([teacher, teacher]).save(tmp_path / "ens.npz")
    for i, path in enumerate([tmp_path / "t" / "best.npz", tmp_path / "ens.npz"]):
        out = tmp_path / f"s{i}"
        assert run(fer_npz, out, "--epochs", "1", "--teacher", str(path), "--distill-temperature", "3",
                   "--distill-weight", "0.7", "--augment", "standard") == 0
        assert f"distilling from {path}" in capsys.readouterr().out
        hist = json.loads((out / "history.json").read_text())
        assert all(np.isfinite(h["train_loss"]) for h in hist)
        assert load_model(out / "last.npz").meta["training"]["args"]["teacher"] == str(path)
    other = load_model(tmp_path / "t" / "best.npz")
    other.meta["classes"] = list("abcdefg")
    other.save(tmp_path / "other.npz")
    assert run(fer_npz, tmp_path / "bad", "--epochs", "1", "--teacher", str(tmp_path / "other.npz")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "are not the student's" in err and len(err.splitlines()) == 1


def test_distillation_from_kept_soft_targets(fer_npz, tmp_path, capsys):
    """--soft-targets: the teacher runs once over the clean training faces; its probabilities are kept
    and read back by later runs; on faces that are not augmented the student learns (up to rounding) what it
    learns from the teacher run per batch; another teacher's file, or no teacher, is one line, exit 2."""
    from minifer.fer import data
    from minifer.fer.classes import model_input
    assert run(fer_npz, tmp_path / "t", "--epochs", "2") == 0
    teacher, soft = tmp_path / "t" / "best.npz", tmp_path / "soft.npz"
    kd = ["--epochs", "1", "--teacher", str(teacher)]
    assert run(fer_npz, tmp_path / "online", *kd) == 0
    assert run(fer_npz, tmp_path / "kept", *kd, "--soft-targets", str(soft)) == 0
    assert "soft targets of 96 faces computed" in capsys.readouterr().out
    arrays, meta = load_npz(soft)
    x, y = data.load_fer(fer_npz, "train")
    t = load_model(teacher)
    np.testing.assert_allclose(arrays["probs"], t.predict_proba(model_input(x, t.meta)), atol=1e-5)
    assert np.array_equal(arrays["labels"], y) and meta["teacher"] == str(teacher)
    online, kept = (load_model(tmp_path / d / "last.npz").state_dict() for d in ("online", "kept"))
    for k in online:   # the teacher's rounding depends on the batch a face is in (32 online, 96 kept):
        np.testing.assert_allclose(kept[k], online[k], rtol=1e-3, atol=1e-3)   # 3.9e-4 apart, measured

    before = soft.stat().st_mtime_ns
    assert run(fer_npz, tmp_path / "again", *kd, "--soft-targets", str(soft), "--augment", "standard") == 0
    assert f"soft targets of 96 faces read from {soft}" in capsys.readouterr().out
    assert soft.stat().st_mtime_ns == before
    t.layers[0].params["W"].data *= 0.5
    t.save(tmp_path / "t2.npz")
    assert run(fer_npz, tmp_path / "bad", "--epochs", "1", "--teacher", str(tmp_path / "t2.npz"),
               "--soft-targets", str(soft)) == 2
    err = capsys.readouterr().err
    assert "keeps another teacher's, TTA's or other faces' probabilities" in err and len(err.splitlines()) == 1
    assert run(fer_npz, tmp_path / "bad", "--epochs", "1", "--soft-targets", str(soft)) == 2
    assert "--soft-targets needs --teacher" in capsys.readouterr().err


def test_distillation_from_a_flip_averaged_teacher(fer_npz, tmp_path, capsys):
    """--teacher-tta flip: the teacher's probabilities are the mean over each face and its mirror, the
    same kept once or run per batch; kept targets of another TTA, or no teacher, are one line, exit 2."""
    from minifer.fer import data
    from minifer.fer.classes import model_input
    assert run(fer_npz, tmp_path / "t", "--epochs", "2") == 0
    teacher, soft = tmp_path / "t" / "best.npz", tmp_path / "soft.npz"
    kd = ["--epochs", "1", "--teacher", str(teacher), "--teacher-tta", "flip"]
    assert run(fer_npz, tmp_path / "online", *kd) == 0
    assert run(fer_npz, tmp_path / "kept", *kd, "--soft-targets", str(soft)) == 0
    arrays, meta = load_npz(soft)
    x, _ = data.load_fer(fer_npz, "train")
    t = load_model(teacher)
    xn = model_input(x, t.meta)
    both = (t.predict_proba(xn) + t.predict_proba(xn[:, :, ::-1])) / 2
    np.testing.assert_allclose(arrays["probs"], both, atol=1e-5)
    assert meta["teacher_tta"] == "flip" and not np.allclose(both, t.predict_proba(xn), atol=1e-3)
    # the same targets up to float rounding (3e-7 here), which three steps magnify; with
    # --distill-weight 0 both runs give bit-identical weights
    online, kept = (load_model(tmp_path / d / "last.npz").state_dict() for d in ("online", "kept"))
    for k in online:
        np.testing.assert_allclose(kept[k], online[k], rtol=1e-3, atol=1e-3)
    capsys.readouterr()
    assert run(fer_npz, tmp_path / "bad", "--epochs", "1", "--teacher", str(teacher), "--soft-targets", str(soft)) == 2
    assert "keeps another teacher's, TTA's" in capsys.readouterr().err
    assert run(fer_npz, tmp_path / "bad", "--epochs", "1", "--teacher-tta", "flip") == 2
    err = capsys.readouterr().err
    assert "--teacher-tta needs --teacher" in err and len(err.splitlines()) == 1


def test_random_crop_training_and_its_views(fer_npz, tmp_path):
    """--crop 40: the model takes 40x40 input; evaluate and predict give it the central crop
    of each 48-px face plainly, and ten 40-px crops with --tta tencrop."""
    from PIL import Image
    from minifer.fer.classes import model_input
    from minifer.fer.evaluation import evaluate
    assert run(fer_npz, tmp_path, "--epochs", "2", "--crop", "40", "--augment", "light") == 0
    m = load_model(tmp_path / "best.npz")
    assert m.meta["input_shape"] == [40, 40, 1]
    z = np.load(fer_npz)
    x, y = z["x_val"], z["y_val"]
    plain = m.predict_proba(model_input(x, m.meta)[:, 4:44, 4:44])
    assert evaluate(m, x, y)["accuracy"] == pytest.approx(float((plain.argmax(1) == y).mean()))
    r = subprocess.run([sys.executable, "-m", "minifer.evaluate", "--weights", str(tmp_path / "best.npz"),
                        "--data", str(fer_npz), "--tta", "tencrop", "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and json.loads(r.stdout)["tta"] == "tencrop", r.stderr
    Image.fromarray(x[0]).save(tmp_path / "face.png")
    r = subprocess.run([sys.executable, "-m", "minifer.predict", "--weights", str(tmp_path / "best.npz"),
                        "--json", "--explain", str(tmp_path / "cams"), str(tmp_path / "face.png")],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    probs = list(json.loads(r.stdout)[0]["faces"][0]["probabilities"].values())
    np.testing.assert_allclose(probs, plain[0], atol=2e-6)
    assert run(fer_npz, tmp_path / "bad", "--epochs", "1", "--crop", "60") == 2


def test_average_run_script(fer_npz, tmp_path):
    """scripts/average_run.py: the last K kept epochs averaged, batch-norm measured again, saved
    with what it averaged, and evaluated in every TTA mode; asking for more epochs than were kept
    is a one-line error."""
    assert run(fer_npz, tmp_path, "--epochs", "3", "--keep-epochs", "2") == 0
    cmd = [sys.executable, str(ROOT / "scripts" / "average_run.py"), str(tmp_path), "--data", str(fer_npz)]
    r = subprocess.run(cmd + ["--last", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = load_model(tmp_path / "swa_2.npz")
    assert m.meta["training"]["averaged"]["members"] == ["epoch_002.npz", "epoch_003.npz"]
    assert m.meta["training"]["command"].startswith("python -m minifer.train --data ")
    a, b = load_model(tmp_path / "epoch_002.npz"), load_model(tmp_path / "epoch_003.npz")
    w = [l for l in m.layers if "W" in l.params][0].name
    np.testing.assert_allclose(m.state_dict()[f"{w}/W"], (a.state_dict()[f"{w}/W"] + b.state_dict()[f"{w}/W"]) / 2,
                               rtol=1e-5, atol=1e-6)
    report = json.loads((tmp_path / "swa_2_eval.json").read_text())
    assert set(report) == {"none", "flip", "tencrop"} and "tta=none" in r.stdout
    r = subprocess.run(cmd + ["--last", "5"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "keeps 2 epoch files" in r.stderr


def test_ship_model_script_ships_a_weight_average(fer_npz, tmp_path):
    """scripts/ship_model.py --weights RUN/swa_K.npz: that network saved as float16 with the run's
    command, history and averaged epochs, evaluated in every TTA mode, reports in --report-dir."""
    assert run(fer_npz, tmp_path, "--epochs", "2", "--keep-epochs", "2") == 0
    scripts = ROOT / "scripts"
    r = subprocess.run([sys.executable, str(scripts / "average_run.py"), str(tmp_path), "--data", str(fer_npz),
                        "--last", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out, rep = tmp_path / "shipped.npz", tmp_path / "reports"
    r = subprocess.run([sys.executable, str(scripts / "ship_model.py"), str(tmp_path), "--data", str(fer_npz),
                        "--weights", str(tmp_path / "swa_2.npz"), "--out", str(out), "--report-dir", str(rep)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:                                        # float16, deflated
        assert {z[k].dtype for k in z.files if z[k].dtype.kind == "f"} == {np.dtype(np.float16)}
    assert {i.compress_type for i in zipfile.ZipFile(out).infolist()} == {zipfile.ZIP_DEFLATED}
    swa, shipped = load_model(tmp_path / "swa_2.npz"), load_model(out)
    for k, v in swa.state_dict().items():
        np.testing.assert_allclose(shipped.state_dict()[k], v, rtol=2e-3, atol=2e-3)
    t = shipped.meta["training"]
    assert t["command"].count("python -m minifer.train") == 1 and len(t["history"]) == 2
    assert t["averaged"]["members"] == ["epoch_001.npz", "epoch_002.npz"]
    assert {f.name for f in rep.iterdir()} == {"eval.json", "confusion.png", "curves.png"}
    # --average-with: the partner's stored history comes first, the epochs numbered on through both
    both = tmp_path / "both.npz"
    r = subprocess.run([sys.executable, str(scripts / "ship_model.py"), str(tmp_path), "--data", str(fer_npz),
                        "--weights", str(tmp_path / "swa_2.npz"), "--average-with", str(out), "--out", str(both),
                        "--report-dir", str(rep)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [h["epoch"] for h in load_model(both).meta["training"]["history"]] == [1, 2, 3, 4]


@pytest.fixture
def rebuild_weights(monkeypatch):
    """scripts/rebuild_weights.py as a module."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    return __import__("rebuild_weights")


def test_rebuild_weights_recipe_parses_and_names_real_scripts(rebuild_weights, capsys):
    """scripts/rebuild_weights.py --dry-run: every training command of the recipe parses with
    minifer.train's own parser (and gives the run the script tracks), every other step names a script
    that exists."""
    assert rebuild_weights.main(["--data", "fer.npz", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    steps = rebuild_weights.commands("fer.npz")
    assert printed.count("minifer.train") == sum(a is not None for _, a in steps) == 13
    for argv, run_ in steps:
        if run_ is None:
            assert argv[1].endswith(".py") and __import__("os").path.exists(argv[1])
        else:
            args = train.parse_args(argv[3:])
            assert (args.out, args.epochs) == (run_.out, run_.epochs)


def test_rebuild_weights_trains_resumes_and_skips(rebuild_weights, fer_npz, tmp_path, monkeypatch, capsys):
    """A tiny recipe run for real: it trains and averages; run again, the finished run is skipped;
    a run with more epochs than its history continues with --resume, or fails in one line with --no-train."""
    run_dir = tmp_path / "a"
    recipe = [("train", f"--model minivgg --epochs 2 --keep-epochs 2 --batch-size 32 --augment none --out {run_dir}"),
              ("average_run.py", f"{run_dir} --last 2")]
    monkeypatch.setattr(rebuild_weights, "RECIPE", recipe)
    assert rebuild_weights.main(["--data", str(fer_npz)]) == 0
    assert (run_dir / "swa_2.npz").exists() and len(json.loads((run_dir / "history.json").read_text())) == 2
    capsys.readouterr()
    assert rebuild_weights.main(["--data", str(fer_npz), "--dry-run"]) == 0
    assert "finished, skipped" in capsys.readouterr().out
    monkeypatch.setattr(rebuild_weights, "RECIPE", [("train", recipe[0][1].replace("--epochs 2", "--epochs 3"))])
    assert rebuild_weights.main(["--data", str(fer_npz), "--dry-run"]) == 0
    assert "--resume" in capsys.readouterr().out
    assert rebuild_weights.main(["--data", str(fer_npz), "--no-train"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_stored_train_command_parses_back_to_the_same_options(monkeypatch):
    """ship_model.train_command (the command stored in shipped files) names every option that was changed,
    booleans included, and none of the run-control ones: parsed again it gives the same TrainOptions."""
    import shlex
    from dataclasses import asdict

    from minifer.fer.training import TrainOptions
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    ship_model = __import__("ship_model")
    opts = TrainOptions(data="fer.npz", epochs=7, mixup=0.2, balanced=True, nesterov=False, teacher="t.npz",
                        distill_temperature=3.0, soft_targets="soft.npz", keep_epochs=5, out="runs/x")
    command = ship_model.train_command({**asdict(opts), "resume": True, "quiet": True})
    assert "--resume" not in command and "--quiet" not in command and "--distill-weight" not in command
    assert TrainOptions.from_namespace(train.parse_args(shlex.split(command)[3:])) == opts
