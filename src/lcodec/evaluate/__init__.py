"""Evaluation: quality metrics and rate-distortion sweeps on real `.lic` files."""
