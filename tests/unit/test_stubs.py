"""The type stubs of the native module agree with the built module (scripts/check_stubs.py), and the check
finds a stub that has drifted."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from conftest import ROOT
from fidrs import _fidrs

STUB = ROOT / "python" / "fidrs" / "_fidrs.pyi"


def _checker():
    spec = importlib.util.spec_from_file_location("check_stubs", ROOT / "scripts" / "check_stubs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stubs_match_the_built_module():
    assert _checker().differences(_fidrs, STUB.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("max_iterations: int = 200,\n) -> dict", "max_iterations: int = 100,\n) -> dict"), "defaults to 200"),
        (("def num_threads() -> int:", "def num_threadz() -> int:"), "num_threads: in the module"),
        (("def merge(self, other: Moments)", "def merge(self, other: Moments, extra: int)"), "Moments.merge"),
        (("    @property\n    def rank(self)", "    def rank(self)"), "Covariance.rank: a property"),
        (("class InternalError(FidrsError):", "class InternalError(NumericalError):"), "class InternalError"),
        (("    *,\n    sigma: float = 10.0,\n    scale", "    sigma: float = 10.0,\n    scale"), "mmd_bootstrap()"),
        (("CMMD_SCALE: float", "CMMD_SCALES: float"), "CMMD_SCALE: in the module"),
    ],
)
def test_the_check_finds_a_drifted_stub(edit, expected):
    source = STUB.read_text(encoding="utf-8")
    old, new = edit
    assert source.count(old) == 1, old
    problems = _checker().differences(_fidrs, source.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_the_documented_frechet_keys_are_the_returned_ones():
    """The stub once documented a `fallback_reason` that was never returned."""
    doc = STUB.read_text(encoding="utf-8").split("def frechet_distance(")[1]
    keys = re.search(r"Keys: ([^.]*)\.", doc).group(1)
    documented = {k.strip() for k in keys.split(",")}
    mu, sigma = np.zeros(3), np.eye(3)
    assert documented == set(_fidrs.frechet_distance(mu, sigma, mu + 1, sigma))
