"""A folder of exercise files: a student's (``start``, the code to write left out) or the
solutions (``solve``, minifer's own code), one file per exercise plus a README."""
import os
from pathlib import Path

from .catalog import EXERCISES, file_name
from .extract import exercise_code

INTRO = {
    False: "Write the parts marked TODO, in NumPy, and leave the rest as it is: it is minifer's own code\n"
           "({module}), and the checker runs yours in its place. Check your work, from this folder:",
    True: "The solution: minifer's own code ({module}), from which the exercise is cut. Check it, from\n"
          "this folder:",
}


def exercise_text(exercise, solution=False):
    """The file of one exercise: a docstring with the task, then the code (solved or not)."""
    i = EXERCISES.index(exercise) + 1
    head = (f'"""Exercise {i} of {len(EXERCISES)}: {exercise.title} ({exercise.name}).\n\n'
            f"Read first: {exercise.chapter} (minifer's tutorial).\n\n{exercise.task}\n\n"
            + INTRO[solution].format(module=exercise.module)
            + f"\n\n    python -m minifer.exercises check . {exercise.name}\n" + '"""\n')
    return head + exercise_code(exercise.name, exercise.module, solution)


def readme(solution):
    """The folder's README.md: the exercises in order, their chapters, the commands."""
    rows = "\n".join(f"| {file_name(e)} | {e.title} | {e.chapter} |" for e in EXERCISES)
    what = "minifer's solutions" if solution else "minifer's exercises"
    return (f"# {what}\n\n| file | exercise | read first |\n|---|---|---|\n{rows}\n\n"
            "```bash\npython -m minifer.exercises check .                  # every exercise\n"
            "python -m minifer.exercises check . dense_backward   # one\n```\n")


def write_folder(folder, solution=False, force=False):
    """Write every exercise's file and the README into ``folder`` -> the paths written.

    Refuses (FileExistsError) to overwrite exercise files already there unless ``force``: they may
    be a student's work. Each file is written whole or not at all."""
    folder = Path(folder)
    files = {file_name(e): exercise_text(e, solution) for e in EXERCISES}
    files["README.md"] = readme(solution)
    there = [n for n in files if n != "README.md" and (folder / n).exists()]
    if there and not force:
        raise FileExistsError(f"{folder} already holds {there[0]} (and {len(there) - 1} more): "
                              f"not overwritten (--force overwrites)")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)
    return [folder / n for n in files]
