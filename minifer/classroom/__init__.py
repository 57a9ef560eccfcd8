"""The classroom: graded exercises cut from minifer's own code (``python -m minifer.exercises``).

:mod:`~.extract` cuts each exercise out of the library where its solution is marked,
:mod:`~.catalog` lists the exercises and their checks (:mod:`~.layer_checks`,
:mod:`~.training_checks`, on :mod:`~.checking`), :mod:`~.handout` writes a student's folder or the
solutions, :mod:`~.runner` checks one file in a child process with a time limit, and
:mod:`~.grading` grades a class into a CSV file.
"""
