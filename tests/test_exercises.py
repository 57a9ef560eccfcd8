"""python -m minifer.exercises: the exercises are cut from the library's own marked code; the checker
passes minifer's solutions, fails the blank files, catches classic mistakes with a message naming
the check, and grading survives broken submissions (a syntax error, an exception, an endless loop)."""
import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from minifer import exercises
from minifer.classroom import extract
from minifer.classroom.catalog import BY_NAME, EXERCISES, file_name
from minifer.classroom.runner import problems

PKG = Path(extract.__file__).resolve().parents[1]


def run(capsys, *argv):
    """(exit code, stdout, stderr) of ``python -m minifer.exercises ARGV`` (run in this process;
    the checks themselves run in child processes)."""
    code = exercises.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A student's folder (``start``) and the solutions (``solve``)."""
    root = tmp_path_factory.mktemp("exercises")
    assert exercises.main(["start", str(root / "start")]) == 0
    assert exercises.main(["solve", str(root / "solve")]) == 0
    return root / "start", root / "solve"


def test_every_exercise_is_marked_once_in_the_library():
    marked = {}
    for path in PKG.rglob("*.py"):
        for name in extract.regions(path):
            marked.setdefault(name, []).append(path.relative_to(PKG.parent).as_posix())
    assert len(EXERCISES) >= 10
    assert sorted(marked) == sorted(BY_NAME), "every marker has an exercise and every exercise markers"
    for e in EXERCISES:
        assert marked[e.name] == [extract.module_path(e.module).relative_to(PKG.parent).as_posix()], e.name


def test_the_files_are_the_library_code_with_the_marked_lines_left_out(folders):
    start, solve = folders
    for e in EXERCISES:
        library = extract.module_path(e.module).read_text().splitlines()
        blank, solution = ((d / file_name(e)).read_text() for d in folders)
        assert "# exercise:" not in solution and "# end exercise" not in solution
        compile(blank, str(e.name), "exec")
        for a, b in extract.regions(extract.module_path(e.module))[e.name]:
            code = [s for s in library[a:b - 1] if len(s.strip()) > 12 and not s.strip().startswith("#")]
            assert code and all(s in solution.splitlines() for s in code), e.name
            assert not any(s in blank.splitlines() for s in code), f"{e.name}: the blank file holds {code}"
        assert f"raise NotImplementedError(\"{e.name}\")" in blank and e.chapter in blank
        assert (Path(__file__).resolve().parents[1] / e.chapter).is_file()


def test_solve_passes_and_start_fails_every_exercise(folders, capsys):
    start, solve = folders
    code, out, _ = run(capsys, "check", solve, "--json", "--jobs", 2)
    results = json.loads(out)["exercises"]
    assert code == 0, [r for r in results if r["status"] != "passed"]
    assert [r["exercise"] for r in results] == [e.name for e in EXERCISES]
    assert all(r["status"] == "passed" and len(r["checks"]) >= 3 for r in results)

    code, out, _ = run(capsys, "check", start, "--jobs", 2)
    assert code == 1
    assert out.count("NOT STARTED") == len(EXERCISES) and f"0 of {len(EXERCISES)} exercises pass" in out
    for e in EXERCISES:
        assert f"{e.name}: not written yet" in out and e.chapter in out


PLANTED = [   # exercise, solution text, the mistake, the check that must catch it, words of its message
    ("dense_backward", 'self.params["W"].grad = x.T @ dout', 'self.params["W"].grad = dout.T @ x',
     "shapes", "the shape of its transpose: a missing .T?"),
    ("softmax_cross_entropy", "return ((p - q) * w[:, None]).astype(p.dtype)", "return (p - q).astype(p.dtype)",
     "values", "it is the reference times 8"),
    ("batchnorm_backward", "a64.sum(axis=0), (a64 * ((b - mu) * inv)).sum(axis=0)",
     "a64.sum(axis=1), (a64 * ((b - mu) * inv)).sum(axis=1)", "shapes", "has shape (2, 24), expected (2, 3)"),
    ("maxpool_backward", "view += dout * (t == tap)", "view += dout", "values", "dx (window 2, stride 2"),
    ("sgd_nesterov", "v *= self.momentum\n", "v *= self.momentum\n                v *= self.momentum\n",
     "values", "W after step 2 (Nesterov momentum 0.9"),
    ("relu", "return dout * (out > 0)", "return dout * (out >= 0)", "values", "dx is off by"),
    ("conv_backward_col2im", "] += cols[", "] = cols[", "values", "relative error"),
    ("adam", "step = lr * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t)", "step = lr",
     "values", "W after step 1"),
    ("training_loop", "order = rng.permutation(len(x))", "order = np.arange(len(x))", "one epoch",
     "shuffle them"),
]


@pytest.mark.parametrize("name, right, wrong, check, words", PLANTED, ids=[p[0] for p in PLANTED])
def test_classic_mistakes_are_caught(folders, tmp_path, capsys, name, right, wrong, check, words):
    text = (folders[1] / file_name(BY_NAME[name])).read_text()
    assert text.count(right) == 1, f"the solution of {name} changed: update this test"
    (tmp_path / file_name(BY_NAME[name])).write_text(text.replace(right, wrong))
    code, out, _ = run(capsys, "check", tmp_path, name, "--json")
    [result] = json.loads(out)["exercises"]
    failed = [c for c in result["checks"] if not c["passed"]]
    assert code == 1 and result["status"] == "failed"
    assert failed[0]["check"] == check and words in failed[0]["message"], failed
    line = problems(result)[0]                                 # check's text report: exercise, check, chapter
    assert line.startswith(f'{name}, check "{check}": ') and line.endswith(f"read {BY_NAME[name].chapter}")


def test_a_loop_that_does_not_learn_fails_learns(folders, tmp_path, capsys):
    name = "training_loop"
    text = (folders[1] / file_name(BY_NAME[name])).read_text()
    (tmp_path / file_name(BY_NAME[name])).write_text(text.replace("        opt.step()\n", ""))
    code, out, _ = run(capsys, "check", tmp_path, name, "--json")
    checks = {c["check"]: c for c in json.loads(out)["exercises"][0]["checks"]}
    assert code == 1 and not checks["learns"]["passed"]
    assert re.search(r"the tiny CNN gets \d+% of the validation spots right, 90% needed \(minifer's own: \d+%\)",
                     checks["learns"]["message"]), checks["learns"]


def test_grade_goes_on_past_broken_submissions(folders, tmp_path, capsys):
    start, solve = folders
    names = ["dense_backward", "relu"]
    dense, relu = (file_name(BY_NAME[n]) for n in names)
    for student, source in (("ada", solve), ("bob", start), ("cy", solve), ("dee", solve)):
        (tmp_path / student).mkdir()
        for f in (dense, relu):
            shutil.copy(source / f, tmp_path / student / f)
    (tmp_path / "eve").mkdir()                                  # handed in nothing
    (tmp_path / "cy" / dense).write_text("def backward(self, dout)\n    return dout\n")
    (tmp_path / "cy" / relu).write_text((solve / relu).read_text().replace(
        "out, self.cache = self.cache, None", "while True:\n            pass"))
    (tmp_path / "dee" / dense).write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "dee" / relu).write_text((solve / relu).read_text().replace(
        "return dout * (out > 0)", "return dout * undefined_name"))

    grades = tmp_path / "grades.csv"
    code, out, err = run(capsys, "grade", tmp_path, *names, "--csv", grades, "--timeout", 8, "--jobs", 2, "--json")
    assert code == 0, err
    rows = {r["student"]: r for r in csv.DictReader(grades.open())}
    assert list(rows) == ["ada", "bob", "cy", "dee", "eve"]
    assert list(rows["ada"]) == ["student", *names, "passed", "problems"]
    assert (rows["ada"]["dense_backward"], rows["ada"]["relu"], rows["ada"]["passed"]) == ("1.00", "1.00", "2")
    assert rows["bob"]["passed"] == "0" and "dense_backward: not started" in rows["bob"]["problems"]
    assert rows["cy"]["problems"] == "dense_backward: error; relu: timeout"
    assert rows["dee"]["problems"] == "dense_backward: error; relu: shapes"
    assert rows["eve"]["problems"] == "dense_backward: missing; relu: missing"
    assert "ada: 2 of 2 exercises pass" in err and "eve: 0 of 2 exercises pass" in err

    errors = {r["student"]: [e["error"] for e in r["exercises"]] for r in json.loads(out)}
    assert errors["cy"][0].startswith(f"syntax error in {dense}, line 1: ")
    assert errors["cy"][1] == "stopped after 8 s (an endless loop?)"
    assert errors["dee"][0] == f"importing {dense} raised SystemExit: 3 at line 2 of {dense}"
    assert not list((tmp_path / "cy").glob("__pycache__")), "the checker wrote into a student's folder"


def test_bad_input_is_one_line_and_exit_2(folders, tmp_path, capsys):
    for argv, words in ((["check", tmp_path / "nope"], "is not a folder"),
                        (["check", folders[0], "densebackward"], "unknown exercise 'densebackward'"),
                        (["start", folders[0]], "not overwritten (--force overwrites)"),
                        (["grade", tmp_path, "--csv", tmp_path / "g.csv"], "holds no student folders")):
        code, out, err = run(capsys, *argv)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert run(capsys, "start", folders[0], "--force")[0] == 0
    code, out, _ = run(capsys, "list")
    assert code == 0 and all(file_name(e) in out and e.chapter in out for e in EXERCISES)
