"""A few hundred mutated files in every test run (``make fuzz`` runs 10,000)."""

from __future__ import annotations

from fuzzing import run


def test_mutated_files_raise_only_lcodec_errors_quickly() -> None:
    res = run(cases=300, seed=7)
    assert res["failures"] == [], res["failures"][:5]
    assert res["rejected"] > 0 and res["decoded"] + res["rejected"] == 300
