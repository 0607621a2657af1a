"""Compiled core of pystream: one Cython module per concern, over plain C in csrc/."""
