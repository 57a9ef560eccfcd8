"""Grading a class: every student's folder under one root, one CSV row each.

A cell is the share of that exercise's checks passed (1.00: all of them; 0.00 for a missing file,
a syntax error or a time-out); ``passed`` counts the exercises fully passed, ``problems`` names each
other exercise's first failing check or error.
"""
import csv
import io
import os
from pathlib import Path

from .runner import check_folder


def student_folders(root):
    """The folders directly under ``root`` (hidden ones left out), sorted by name."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def score(result):
    """Share of the checks of one result that passed (0 when none ran)."""
    checks = result["checks"]
    return sum(c["passed"] for c in checks) / len(checks) if checks else 0.0


def first_problem(result):
    """``relu: values`` / ``adam: timeout``: why an exercise did not pass, in a few words."""
    failed = [c["check"] for c in result["checks"] if not c["passed"]]
    why = result["status"] if result["status"] in ("missing", "error", "timeout", "not started") else failed[0]
    return f"{result['exercise']}: {why}"


def grade(root, exercises, timeout, jobs=1, log=None):
    """``[(student, results)]`` for every student folder under ``root`` (``jobs`` exercises checked
    at a time); ``log(line)`` after each student."""
    rows = []
    for folder in student_folders(root):
        results = check_folder(folder, exercises, timeout, jobs)
        rows.append((folder.name, results))
        if log:
            passed = sum(r["status"] == "passed" for r in results)
            seconds = sum(r["seconds"] for r in results)
            log(f"{folder.name}: {passed} of {len(results)} exercises pass ({seconds:.0f} s)")
    return rows


def write_csv(path, rows, exercises):
    """Write the grades: student, one column per exercise, passed, problems (atomically)."""
    buf = io.StringIO()
    out = csv.writer(buf)
    out.writerow(["student"] + [e.name for e in exercises] + ["passed", "problems"])
    for student, results in rows:
        out.writerow([student] + [f"{score(r):.2f}" for r in results]
                     + [sum(r["status"] == "passed" for r in results),
                        "; ".join(first_problem(r) for r in results if r["status"] != "passed")])
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
