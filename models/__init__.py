"""The shipped weights and model cards, installed as package data (found by lcodec.models)."""
