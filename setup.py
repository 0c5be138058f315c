"""Build hook for the optional C speedups; all other metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # optional: a machine without a C compiler still installs; daemon/alert.py then
        # uses its pure Python fallbacks.
        Extension("daemon._speedups", sources=["daemon/_speedups.c"], optional=True),
    ],
)
