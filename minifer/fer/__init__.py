"""The facial-emotion application built on the framework.

Everything here may import the framework (``minifer.backend`` ... ``minifer.model``);
nothing in the framework imports from here.
"""
