"""Ensembles (one file, averaged softmax) and weight averaging with batch-norm re-estimation."""
import os

import numpy as np
import pytest

from minifer import Sequential, zoo
from minifer.averaging import average_weights, update_bn
from minifer.io import load_npz
from minifer.layers import BatchNorm2d, Conv2d, Dense, Flatten
from minifer.model import Ensemble, load_model

rng = np.random.default_rng(0)
PRE = {"color": "gray", "scale": 1 / 255, "mean": [0.5], "std": [0.25]}


def small(seed, **kw):
    m = zoo.minivgg(num_classes=3, input_size=16, widths=(4, 8), hidden=8, seed=seed, **kw)
    m.meta["preprocess"] = dict(PRE)
    m.train()
    m.forward(rng.standard_normal((6, 16, 16, 1)).astype(np.float32))   # moves BN statistics
    return m.eval()


def test_ensemble_averages_member_probabilities_and_round_trips(tmp_path):
    members = [small(s) for s in (1, 2, 3)]
    ens = Ensemble(members)
    x = rng.standard_normal((5, 16, 16, 1)).astype(np.float32)
    want = np.mean([m.predict_proba(x) for m in members], axis=0)
    np.testing.assert_allclose(ens.predict_proba(x), want, rtol=1e-6, atol=1e-7)
    assert ens.meta["classes"] == ["0", "1", "2"] and ens.meta["preprocess"] == PRE
    path = tmp_path / "ens.npz"
    ens.save(path, note="three seeds")
    arrays, meta = load_npz(path)
    assert len(meta["ensemble"]) == 3 and all(k.startswith(("m0/", "m1/", "m2/")) for k in arrays)
    back = load_model(path)
    assert isinstance(back, Ensemble) and len(back.members) == 3 and back.meta["note"] == "three seeds"
    np.testing.assert_allclose(back.predict_proba(x), want, rtol=1e-6, atol=1e-7)
    assert back.flops() == 3 * members[0].flops()


def test_ensemble_members_must_agree():
    a, b = small(1), small(2)
    b.meta["preprocess"] = dict(PRE, mean=[0.4])
    with pytest.raises(ValueError, match="preprocess"):
        Ensemble([a, b])
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])


def test_ensemble_of_members_with_different_input_sizes(tmp_path):
    """A 16-px and a 12-px member (trained on crops): the ensemble takes 16-px faces and the
    12-px member sees their central crop, also after a round trip; Grad-CAM keeps the frame."""
    from minifer.fer.explain import grad_cam
    big = small(1)
    crop = zoo.minivgg(num_classes=3, input_size=12, widths=(4, 8), hidden=8, seed=5)
    crop.meta["preprocess"] = dict(PRE)
    ens = Ensemble([big, crop.eval()])
    assert ens.meta["input_shape"] == [16, 16, 1]
    x = rng.standard_normal((4, 16, 16, 1)).astype(np.float32)
    want = (big.predict_proba(x) + crop.predict_proba(x[:, 2:14, 2:14])) / 2
    np.testing.assert_allclose(ens.predict_proba(x), want, rtol=1e-6, atol=1e-7)
    ens.save(tmp_path / "mixed.npz")
    back = load_model(tmp_path / "mixed.npz")
    assert [m.meta["input_shape"] for m in back.members] == [[16, 16, 1], [12, 12, 1]]
    np.testing.assert_allclose(back.predict_proba(x), want, rtol=1e-6, atol=1e-7)
    assert back.flops() == big.flops() + crop.flops()
    cam = grad_cam(back, x[:2])
    assert cam.shape == (2, 16, 16) and np.isfinite(cam).all()


def test_tta_of_a_mixed_ensemble_runs_per_member():
    """Ten-crop (and flip) of a 48-px + 44-px ensemble: each member with the views at its own
    size (the 44-px member's ten crops are exact 44-px boxes), then averaged."""
    from minifer.fer.tta import model_tta_predict, tta_predict

    def net(side, seed):
        m = zoo.minivgg(num_classes=3, input_size=side, widths=(4, 8), hidden=8, seed=seed)
        m.meta["preprocess"] = dict(PRE)
        return m.eval()
    a, b = net(48, 1), net(44, 2)
    x = rng.standard_normal((3, 48, 48, 1)).astype(np.float32)
    for mode in ("none", "flip", "tencrop"):
        want = (tta_predict(a.predict_proba, x, mode, size=48) + tta_predict(b.predict_proba, x, mode, size=44)) / 2
        np.testing.assert_allclose(model_tta_predict(Ensemble([a, b]), x, mode), want, rtol=1e-5, atol=1e-6)


def test_average_weights_is_the_parameter_mean():
    a, b = small(1), small(2)
    avg = average_weights([a, b])
    for k, v in avg.state_dict().items():
        np.testing.assert_allclose(v, (a.state_dict()[k] + b.state_dict()[k]) / 2, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="one architecture"):
        average_weights([a, zoo.minivgg(num_classes=3, input_size=16, widths=(4, 4), hidden=8)])


def test_update_bn_measures_the_statistics_again():
    conv = Conv2d(1, 3, 3, padding=1, bias=False, rng=rng, name="c")
    model = Sequential([conv, BatchNorm2d(3, name="bn"), Flatten(name="f"), Dense(48, 2, rng=rng, name="d")])
    batches = [rng.standard_normal((4, 4, 4, 1)).astype(np.float32) * 2 + 1 for _ in range(3)]
    update_bn(model, batches)
    h = np.concatenate([conv.forward(b) for b in batches]).reshape(-1, 3).astype(np.float64)
    bn = model.layers[1]
    np.testing.assert_allclose(bn.buffers["running_mean"], h.mean(axis=0), rtol=1e-5, atol=1e-6)
    per_batch_var = [b.reshape(-1, 3).var(axis=0, ddof=1) for b in np.split(h.reshape(12, 4, 4, 3), 3)]
    np.testing.assert_allclose(bn.buffers["running_var"], np.mean(per_batch_var, axis=0), rtol=1e-4)
    assert bn.momentum == 0.1 and not bn.training


# ---- the application on an ensemble file ----------------------------------------------
def emotion_model(seed):
    from minifer.fer.classes import CLASSES
    m = zoo.minivgg(seed=seed, classes=CLASSES)
    m.meta["preprocess"] = dict(PRE)
    return m.eval()


def test_predict_and_evaluate_take_an_ensemble_file(tmp_path):
    """``predict --weights`` and ``evaluate --weights`` read an ensemble file like one network:
    the probabilities are the members' mean, and ``--explain`` averages their Grad-CAM maps."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    from PIL import Image
    from minifer.fer.classes import model_input
    root = Path(__file__).parents[1]
    members = [emotion_model(s) for s in (1, 2)]
    Ensemble(members).save(tmp_path / "ens.npz")
    face = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    Image.fromarray(face).save(tmp_path / "face.png")
    env = dict(os.environ, PYTHONPATH=str(root))
    r = subprocess.run([sys.executable, "-m", "minifer.predict", "--weights", tmp_path / "ens.npz", "--json",
                        "--explain", tmp_path / "cams", tmp_path / "face.png"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    probs = np.array(list(json.loads(r.stdout)[0]["faces"][0]["probabilities"].values()))
    want = np.mean([m.predict_proba(model_input(face, m.meta)) for m in members], axis=0)[0]
    np.testing.assert_allclose(probs, want, atol=2e-6)
    assert [p.name for p in (tmp_path / "cams").iterdir()] == ["face_face1_gradcam.png"]

    x = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 7, 20).astype(np.uint8)
    np.savez(tmp_path / "data.npz", x_val=x, y_val=y)
    r = subprocess.run([sys.executable, "-m", "minifer.evaluate", "--weights", tmp_path / "ens.npz",
                        "--data", tmp_path / "data.npz", "--split", "val", "--json"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    pred = Ensemble(members).predict_proba(model_input(x, members[0].meta)).argmax(axis=1)
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(float((pred == y).mean()))


def test_grad_cam_of_an_ensemble_is_the_members_mean():
    from minifer.fer.explain import grad_cam
    members = [emotion_model(s) for s in (1, 2)]
    x = rng.standard_normal((2, 48, 48, 1)).astype(np.float32)
    target = Ensemble(members).predict_proba(x).argmax(axis=1)
    want = np.mean([grad_cam(m, x, target=target) for m in members], axis=0)
    np.testing.assert_allclose(grad_cam(Ensemble(members), x), want, rtol=1e-5, atol=1e-6)


def test_shipped_ensemble_file_holds_the_shipped_default():
    """``weights/fer_ensemble.npz`` (the model card's ensemble) loads as one model whose first member
    is exactly the default network ``predict`` uses, and whose output is the mean of its members'."""
    from pathlib import Path
    from minifer.fer.classes import input_side, model_input
    from minifer.fer.tta import tta_views
    root = Path(__file__).parents[1]
    ens = load_model(root / "weights" / "fer_ensemble.npz")
    default = load_model(root / "minifer" / "fer" / "weights" / "minivgg_fer.npz")
    assert isinstance(ens, Ensemble) and len(ens.members) == len(ens.meta["sources"]) >= 2
    assert ens.meta["sources"][0] == "minivgg_fer.npz"
    first, want = ens.members[0].state_dict(), default.state_dict()
    assert first.keys() == want.keys() and all(np.array_equal(first[k], want[k]) for k in want)
    faces = rng.integers(0, 256, (4, 48, 48), dtype=np.uint8)
    x = model_input(faces, ens.meta)
    views = [tta_views(x, "none", size=input_side(m.meta))[0] for m in ens.members]    # central crops
    mean = np.mean([m.predict_proba(v) for m, v in zip(ens.members, views)], axis=0)
    np.testing.assert_allclose(ens.predict_proba(x), mean, rtol=1e-5, atol=1e-6)


def test_choose_ensemble_script_ranks_every_subset(tmp_path):
    """scripts/choose_ensemble.py: each candidate alone, then every subset of 2 or more ranked by the
    accuracy of what that Ensemble predicts; an ensemble file as a candidate is a one-line error."""
    import subprocess
    import sys
    from pathlib import Path
    from minifer.fer.classes import model_input
    root = Path(__file__).parents[1]
    files = []
    for s in (1, 2, 3):
        emotion_model(s).save(tmp_path / f"m{s}.npz")
        files.append(str(tmp_path / f"m{s}.npz"))
    x = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 7, 40).astype(np.uint8)
    np.savez(tmp_path / "data.npz", x_val=x, y_val=y)
    cmd = [sys.executable, str(root / "scripts" / "choose_ensemble.py"), *files, "--data", str(tmp_path / "data.npz")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    singles, ranked = r.stdout.split("the best 4 of 4 subsets:")
    rows = [line.strip("|").split("|") for line in ranked.splitlines() if line.startswith("| /")]
    assert len(rows) == 4 and len(singles.split("| /")) == 4
    accs = []
    for names, acc, _ in rows:
        ens = Ensemble([load_model(f.strip()) for f in names.split(" + ")])
        want = (ens.predict_proba(model_input(x, ens.meta)).argmax(axis=1) == y).mean() * 100
        assert float(acc.strip(" %")) == pytest.approx(want, abs=0.006)
        accs.append(want)
    assert accs == sorted(accs, reverse=True)

    # against the FER+ crowd majority: faces without one (here every 4th) are left out
    from minifer.fer.crowd import CLASS_COLUMN, VOTE_COLUMNS
    majority = rng.integers(0, 7, 40)
    votes = np.zeros((40, 10), np.int16)
    votes[np.arange(40), CLASS_COLUMN[majority]] = 6
    votes[::4, VOTE_COLUMNS.index("unknown")] = 8
    np.savez(tmp_path / "votes.npz", votes_val=votes)
    r = subprocess.run(cmd + ["--labels", "ferplus", "--votes", str(tmp_path / "votes.npz")],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "30 validation images, labels ferplus" in r.stdout, r.stderr
    ens, keep = Ensemble([load_model(f) for f in files]), np.arange(40) % 4 > 0
    want = (ens.predict_proba(model_input(x[keep], ens.meta)).argmax(axis=1) == majority[keep]).mean() * 100
    assert f"| {' + '.join(files)} | {want:.2f}% |" in r.stdout

    Ensemble([load_model(f) for f in files[:2]]).save(tmp_path / "ens.npz")
    r = subprocess.run(cmd[:2] + [str(tmp_path / "ens.npz"), files[2], "--data", str(tmp_path / "data.npz")],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 1 and r.stderr.strip().endswith("candidates must be single networks")
    assert len(r.stderr.strip().splitlines()) == 1
