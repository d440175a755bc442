"""Entropy coding: probability models for the symbols and the range coder.

Importing the package registers every entropy method (:mod:`lcodec.entropy.methods`).
"""

from lcodec.entropy import methods  # noqa: F401  (registers the methods)
