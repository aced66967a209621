"""Numba post-processing core: pure functions on numpy arrays, no I/O.

This package imports nothing else of the project.
"""
