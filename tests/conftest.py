from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIDRS_SHARED", ROOT.parent / "shared"))
CONFORMANCE = SHARED / "conformance"
DATA = SHARED / "data" / "fruits360-apples"
WEIGHTS = CONFORMANCE / "random_fid_inception.pth"


def require_shared() -> None:
    if not WEIGHTS.is_file():
        pytest.skip(f"shared conformance data not found at {SHARED} (set FIDRS_SHARED)")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test run builds its ONNX model into its own cache, never the user's."""
    cache = tmp_path_factory.mktemp("fidrs-cache")
    old = os.environ.get("FIDRS_CACHE")
    os.environ["FIDRS_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("FIDRS_CACHE", None)
    else:
        os.environ["FIDRS_CACHE"] = old


@pytest.fixture(scope="session")
def weights() -> str:
    require_shared()
    return str(WEIGHTS)


@pytest.fixture(scope="session")
def reference_fids() -> dict:
    require_shared()
    return json.loads((CONFORMANCE / "pytorch_fid_reference.json").read_text())


@pytest.fixture(scope="session")
def reference_features():
    require_shared()
    data = np.load(CONFORMANCE / "pytorch_fid_features.npz")
    return [str(DATA / f) for f in data["files"]], data["features"]


@pytest.fixture(scope="session")
def class_stats(weights, reference_fids):
    """fidrs.Stats of every training class (one feature pass over the 4,844 training photos)."""
    import warnings

    import fidrs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
        return {c: fidrs.stats(str(DATA / "training" / c), weights=weights) for c in reference_fids["classes"]}
