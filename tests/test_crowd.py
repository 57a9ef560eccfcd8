"""FER+ crowd votes: the vote arithmetic, training on votes, evaluation against the crowd, models by name."""
import json
import subprocess
import sys

import numpy as np
import pytest

from minifer import train
from minifer.fer import catalog, crowd
from minifer.fer.classes import CLASSES
from minifer.model import load_model

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "examples" / "images" / "astronaut.jpg"


def vote_row(**counts):
    """One face's ten votes from column names: ``vote_row(happiness=8, neutral=2)``."""
    row = np.zeros(len(crowd.VOTE_COLUMNS), np.int16)
    for name, n in counts.items():
        row[crowd.VOTE_COLUMNS.index(name)] = n
    return row


def test_columns_majority_and_faces_left_out():
    votes = np.stack([vote_row(anger=6, neutral=4), vote_row(happiness=9, contempt=1),
                      vote_row(contempt=6, sadness=4), vote_row(unknown=4, fear=3, surprise=3),
                      vote_row(NF=10), vote_row(), vote_row(disgust=5, anger=5)])
    # FER2013's order: angry, disgust, fear, happy, sad, surprise, neutral
    assert [crowd.VOTE_COLUMNS[c] for c in crowd.CLASS_COLUMN] == [
        "anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    # contempt, unknown, not-a-face or no votes on top: left out; a tie goes to the first column
    assert crowd.crowd_majority(votes).tolist() == [0, 3, -1, -1, -1, -1, 0]
    q = crowd.vote_distribution(votes)
    assert q.dtype == np.float32 and np.allclose(q[0], [0.6, 0, 0, 0, 0, 0, 0.4])
    assert np.allclose(q[1, 3], 1.0) and np.allclose(q[2, 4], 1.0) and np.allclose(q[6, :2], 0.5) and q[4].sum() == 0 == q[5].sum()
    clear = crowd.clear_expressions(np.stack([vote_row(happiness=7, neutral=3), vote_row(neutral=10),
                                              vote_row(fear=6, neutral=4)]))
    assert clear.tolist() == [True, False, False]


def test_crowd_report_by_hand():
    votes = np.stack([vote_row(happiness=8, neutral=2), vote_row(sadness=6, neutral=4),
                      vote_row(unknown=6, anger=4), vote_row(surprise=10)])
    probs = np.zeros((4, 7))
    probs[0, 3], probs[0, 6] = 0.8, 0.2        # happy: right, share 0.8, confidence 0.8
    probs[1, 6], probs[1, 4] = 0.7, 0.3        # neutral: wrong against the majority (sad), share 0.4
    probs[2, 0], probs[2, 2] = 0.9, 0.1        # angry: no majority face; share 4/4 of the class votes
    probs[3, 5], probs[3, 3] = 0.6, 0.4        # surprise: right, clear, share 1.0, confidence 0.6
    r = crowd.crowd_report(probs, votes)
    assert r["majority_faces"] == 3 and r["majority_accuracy"] == pytest.approx(2 / 3)
    assert r["crowd_share"] == pytest.approx((0.8 + 0.4 + 1.0 + 1.0) / 4)
    assert r["clear_faces"] == 2 and r["clear_named"] == 1.0
    # ECE: bins 0.8 (|0.8-0.8|), 0.7 (|0.4-0.7|), 0.9 (|1-0.9|), 0.6 (|1-0.6|), a face each
    assert r["ece"] == pytest.approx((0 + 0.3 + 0.1 + 0.4) / 4)
    assert sum(b["count"] for b in r["reliability"]) == 4
    calibrated = crowd.calibration(crowd.vote_distribution(votes[[0, 1, 3]]).astype(np.float64), votes[[0, 1, 3]])
    assert calibrated["ece"] == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def fer_plus(tmp_path_factory):
    """A tiny learnable FER-like set (each class its own bright square) laid out as the shared
    folders are (``fer2013/`` and ``ferplus/`` side by side), with votes that mostly agree
    with the labels; every 8th training face is voted unknown and must be left out."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("shared")

    def make(n):
        y = rng.integers(0, 7, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 48, 48)).astype(np.uint8)
        v = np.zeros((n, 10), np.int16)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 4)
            x[i, 4 + r * 20:16 + r * 20, 2 + col * 11:12 + col * 11] += 150
            v[i, crowd.CLASS_COLUMN[c]] = 7
            v[i, crowd.CLASS_COLUMN[(c + 1) % 7]] = 3
        return x, y, v
    xt, yt, vt = make(104)
    xv, yv, vv = make(64)
    vt[::8] = vote_row(unknown=6, neutral=4)
    (root / "fer2013").mkdir()
    (root / "ferplus").mkdir()
    np.savez(root / "fer2013" / "tiny.npz", x_train=xt, y_train=yt, x_val=xv, y_val=yv)
    np.savez(root / "ferplus" / crowd.VOTES_FILE, votes_train=vt, votes_val=vv)
    return root / "fer2013" / "tiny.npz"


def run(data, out, *extra):
    return train.main(["--data", str(data), "--out", str(out), "--batch-size", "32", "--lr", "0.05",
                       "--augment", "none", "--quiet", "--checkpoint-every", "0", *extra])


def test_train_on_votes_and_majority(fer_plus, tmp_path, capsys):
    assert run(fer_plus, tmp_path / "v", "--labels", "ferplus", "--epochs", "4") == 0
    out = capsys.readouterr().out
    assert "FER+ crowd votes" in out and "91 of 104 training faces" in out and "64 validation faces" in out
    hist = json.loads((tmp_path / "v" / "history.json").read_text())
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"] and hist[-1]["val_acc"] > 0.5
    args = load_model(tmp_path / "v" / "best.npz").meta["training"]["args"]
    assert (args["labels"], args["target"]) == ("ferplus", "votes")
    # the top vote as a hard target, with mixup; stopped mid-epoch and resumed
    extra = ["--labels", "ferplus", "--target", "majority", "--mixup", "0.2", "--epochs", "2"]
    assert run(fer_plus, tmp_path / "m", *extra, "--stop-after", "2") == 0
    assert run(fer_plus, tmp_path / "m", *extra, "--resume") == 0
    assert len(json.loads((tmp_path / "m" / "history.json").read_text())) == 2
    # distilled from the votes-trained network, on votes
    assert run(fer_plus, tmp_path / "d", "--labels", "ferplus", "--epochs", "1",
               "--teacher", str(tmp_path / "v" / "best.npz")) == 0


def test_train_with_missing_votes_is_one_line(fer_plus, tmp_path, capsys):
    assert run(fer_plus, tmp_path, "--labels", "ferplus", "--votes", str(tmp_path / "nope.npz")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.npz: no such votes file" in err[0]


def evaluate(*args):
    return subprocess.run([sys.executable, "-m", "minifer.evaluate", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_evaluate_reports_the_crowd(fer_plus, tmp_path):
    assert run(fer_plus, tmp_path, "--labels", "ferplus", "--epochs", "2") == 0
    weights = tmp_path / "best.npz"
    r = evaluate("--weights", weights, "--data", fer_plus, "--json", "--calibration", tmp_path / "rel.png")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    c = rep["crowd"]                           # the votes were found beside the data's folder
    assert c["majority_faces"] == 64 and 0 <= c["majority_accuracy"] <= 1 and 0 <= c["ece"] <= 1
    assert {"crowd_share", "clear_named", "clear_faces", "reliability", "majority_per_class"} <= set(c)
    assert 0 <= rep["accuracy"] <= 1 and (tmp_path / "rel.png").stat().st_size > 0
    text = evaluate("--weights", weights, "--data", fer_plus).stdout
    assert "crowd majority" in text and "against FER2013's labels" in text
    assert "crowd" not in json.loads(evaluate("--weights", weights, "--data", fer_plus, "--json",
                                              "--no-votes").stdout)
    bad = evaluate("--weights", weights, "--data", fer_plus, "--votes", tmp_path / "nope.npz")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_catalog_names_real_files():
    cat = catalog.catalog()
    assert cat["default"] in cat["models"]
    for name, entry in cat["models"].items():
        assert entry["labels"] in ("fer2013", "ferplus") and entry["about"]
        path = catalog.model_path(name)
        assert load_model(path).meta["classes"] == list(CLASSES), name
        if entry["where"] == "package":
            assert path.parent == catalog.weights_dir()
    # the scores --model list prints are the model card's
    assert catalog.format_list(markdown=True) in (ROOT / "weights" / "README.md").read_text()


@pytest.mark.parametrize("tool", ["predict", "evaluate", "serve"])
def test_model_list_and_bad_names(tool):
    r = subprocess.run([sys.executable, "-m", f"minifer.{tool}", "--model", "list"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for name in catalog.catalog()["models"]:
        assert name in r.stdout
    assert "(default)" in r.stdout
    extra = {"predict": [ASTRONAUT], "evaluate": ["--data", "x.npz"], "serve": ["--port", "1"]}[tool]
    r = subprocess.run([sys.executable, "-m", f"minifer.{tool}", "--model", "nope", *map(str, extra)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_predict_and_api_by_name():
    from minifer.fer.recognizer import EmotionRecognizer
    r = subprocess.run([sys.executable, "-m", "minifer.predict", str(ASTRONAUT), "--model", "fer2013", "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    by_name = EmotionRecognizer(model="fer2013").detect_emotions(str(ASTRONAUT))
    by_file = EmotionRecognizer(catalog.model_path("fer2013")).detect_emotions(str(ASTRONAUT))
    assert by_name == by_file and json.loads(r.stdout)[0]["faces"][0]["label"] == by_name[0]["label"]
