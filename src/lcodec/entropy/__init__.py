"""Entropy coding: probability models for the symbols and the range coder."""
