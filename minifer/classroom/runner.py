"""Grading one exercise file: its checks run in a child process with a time limit, so that a
syntax error, an exception, an endless loop or a crash in a student's code is reported as that and
never stops the checker. (A time limit, not a sandbox: the code runs with your rights.)

The child (``python -m minifer.classroom.runner NAME FILE RESULT``) imports the file, runs every
check of the exercise in order and writes the result as JSON; the parent reads it, or reports the
time-out or crash. A result::

    {"exercise": "relu", "file": "02_relu.py", "chapter": "docs/...", "status": "failed",
     "checks": [{"check": "values", "passed": false, "message": "dx is off by ..."}, ...],
     "error": null, "seconds": 1.3}

``status``: passed, failed, not started (every check stopped at ``NotImplementedError``), missing
(no file), error (the file does not import, or the child crashed) or timeout.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .catalog import BY_NAME, file_name
from .checking import Failed

TIMEOUT = 120.0      # seconds per exercise; minifer's solutions take 1-6 s (docs/exercises_instructors.md)


def _where(exc, path):
    """`` at line N of FILE`` for the last frame of the traceback in the student's file, else ''."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return f" at line {lines[-1]} of {path.name}" if lines else ""


def _short(text, n=300):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def _result(exercise, path, status, error=None):
    """A result with no check run (yet)."""
    return {"exercise": exercise.name, "file": Path(path).name, "chapter": exercise.chapter, "status": status,
            "checks": [], "error": error, "seconds": 0.0}


def run_checks(exercise, path):
    """In the child: import the student's ``path`` and run ``exercise``'s checks -> the result dict."""
    path = Path(path).resolve()
    result = _result(exercise, path, "error")
    sys.dont_write_bytecode = True                    # no __pycache__ in the student's folder
    try:
        spec = importlib.util.spec_from_file_location(f"student_{exercise.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except SyntaxError as e:
        result["error"] = f"syntax error in {path.name}, line {e.lineno}: {e.msg}"
        return result
    except BaseException as e:                        # SystemExit too: the checker goes on
        result["error"] = f"importing {path.name} raised {type(e).__name__}: {_short(e)}{_where(e, path)}"
        return result
    todo = 0
    for name, check in exercise.checks:
        try:
            check(module)
            passed, message = True, ""
        except Failed as e:
            passed, message = False, str(e)
        except NotImplementedError as e:
            passed, message = False, f"not written yet: NotImplementedError{_where(e, path)}"
            todo += 1
        except (Exception, SystemExit) as e:
            passed, message = False, f"your code raised {type(e).__name__}: {_short(e)}{_where(e, path)}"
        result["checks"].append({"check": name, "passed": passed, "message": message})
    results = [c["passed"] for c in result["checks"]]
    result["status"] = "passed" if all(results) else "not started" if todo == len(results) else "failed"
    return result


def check_file(exercise, path, timeout=TIMEOUT):
    """Run ``exercise``'s checks on the file ``path`` in a child process -> the result dict."""
    path = Path(path).resolve()
    start = time.perf_counter()
    if not path.is_file():
        return _result(exercise, path, "missing", f"no file {path.name}")
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        with open(err, "w") as stderr:
            child = subprocess.Popen([sys.executable, "-m", "minifer.classroom.runner", exercise.name,
                                      str(path), str(out)], cwd=tmp, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
            try:
                code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)  # the child and anything it started
                child.wait()
                code = None
        if out.is_file():
            result = json.loads(out.read_text())
        else:
            last = (err.read_text(errors="replace").strip().splitlines() or [""])[-1]
            result = (_result(exercise, path, "timeout", f"stopped after {timeout:g} s (an endless loop?)")
                      if code is None else
                      _result(exercise, path, "error", f"the checker's process died (exit status {code}): "
                                                       f"{_short(last)}"))
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def check_folder(folder, exercises, timeout=TIMEOUT, jobs=1):
    """The results of ``exercises`` on their files in ``folder``, in order; ``jobs`` child
    processes at a time."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(lambda e: check_file(e, Path(folder) / file_name(e), timeout), exercises))


def problems(result):
    """One line per failure of a result: which exercise, which check, how much, which chapter."""
    see = f" -- read {result['chapter']}"
    if result["error"]:
        return [f"{result['exercise']}: {result['error']}{see}"]
    if result["status"] == "not started":
        return [f"{result['exercise']}: not written yet (every check stopped at NotImplementedError){see}"]
    return [f"{result['exercise']}, check \"{c['check']}\": {c['message']}{see}"
            for c in result["checks"] if not c["passed"]]


def child_main(argv):
    """``NAME FILE RESULT``: check one exercise file, write the result to RESULT."""
    name, path, out = argv
    result = run_checks(BY_NAME[name], path)
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out)


if __name__ == "__main__":
    child_main(sys.argv[1:])
