"""``python -m minifer.exercises``: graded exercises cut from minifer's own code (hand out, check, grade).

    python -m minifer.exercises start DIR             # a student's folder: one file per exercise
    python -m minifer.exercises check DIR [NAME...]   # grade it: which check failed, by how much
    python -m minifer.exercises grade ROOT --csv grades.csv   # a folder of students' folders
    python -m minifer.exercises solve DIR             # minifer's solutions (for instructors)
    python -m minifer.exercises list                  # the exercises and their chapters

``check`` exits 0 when every exercise checked passes, 1 otherwise; bad input exits 2 with one line.
Each exercise runs in its own process with a time limit (``--timeout``), so a broken submission
(a syntax error, an exception, an endless loop) is graded as that, and the rest goes on.
See docs/exercises_instructors.md and docs/exercises_learners.md.
"""
import argparse
import json
import sys
from pathlib import Path

from ._version import add_version_option
from .classroom.catalog import EXERCISES, file_name, select
from .classroom.grading import grade, student_folders, write_csv
from .classroom.handout import write_folder
from .classroom.runner import TIMEOUT, check_folder, problems


def _parser():
    p = argparse.ArgumentParser(prog="python -m minifer.exercises", description=__doc__.split("\n")[0])
    add_version_option(p)
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("start", "write a student's folder (the code to write left out)"),
                       ("solve", "write minifer's solutions (for instructors)")):
        s = sub.add_parser(name, help=what)
        s.add_argument("dir")
        s.add_argument("--force", action="store_true", help="overwrite exercise files already there")
    for name, what in (("check", "check a student's folder"), ("grade", "grade every folder under ROOT")):
        s = sub.add_parser(name, help=what)
        s.add_argument("dir", metavar="DIR" if name == "check" else "ROOT")
        s.add_argument("names", nargs="*", metavar="NAME", help="only these exercises (default: all)")
        s.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per exercise")
        s.add_argument("--jobs", type=int, default=1, help="exercises checked at a time (child processes)")
        s.add_argument("--json", action="store_true", help="print the results as JSON")
        if name == "grade":
            s.add_argument("--csv", required=True, help="write the grades here: one row per student")
    sub.add_parser("list", help="the exercises, their files and chapters")
    return p


def _check(args, exercises):
    results = check_folder(args.dir, exercises, args.timeout, args.jobs)
    passed = sum(r["status"] == "passed" for r in results)
    if args.json:
        print(json.dumps({"dir": args.dir, "passed": passed, "total": len(results), "exercises": results}, indent=1))
    else:
        for r in results:
            checks = ", ".join(c["check"] for c in r["checks"]) or "-"
            print(f"{r['status'].upper():12s} {r['exercise']:22s} {r['seconds']:5.1f} s   checks: {checks}")
            for line in ([] if r["status"] == "passed" else problems(r)):
                print(f"    {line}")
        print(f"{passed} of {len(results)} exercises pass")
    return 0 if passed == len(results) else 1


def _grade(args, exercises):
    if not student_folders(args.dir):
        raise ValueError(f"{args.dir} holds no student folders")
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    rows = grade(args.dir, exercises, args.timeout, args.jobs, log)
    write_csv(args.csv, rows, exercises)
    if args.json:
        print(json.dumps([{"student": s, "exercises": r} for s, r in rows], indent=1))
    else:
        print(f"{len(rows)} students graded -> {args.csv}")
    return 0


def main(argv=None):
    """Command-line entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            for e in EXERCISES:
                print(f"{file_name(e):28s} {e.title:50s} {e.chapter}")
            return 0
        if args.command in ("start", "solve"):
            paths = write_folder(args.dir, solution=args.command == "solve", force=args.force)
            print(f"{len(paths) - 1} exercises and a README in {args.dir}")
            return 0
        exercises = select(args.names)
        if not Path(args.dir).is_dir():
            raise ValueError(f"{args.dir} is not a folder")
        return _check(args, exercises) if args.command == "check" else _grade(args, exercises)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
