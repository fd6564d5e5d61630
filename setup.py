"""Declares the optional C accelerator of ssehub.wire; all other metadata is in pyproject.toml.

``optional=True``: where the extension cannot be compiled (no C compiler, no Python headers),
the install still succeeds and ssehub.wire uses its pure-Python implementation.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("ssehub._wire_c", ["src/ssehub/_wire_c.c"], optional=True)])
