"""FID of the fruit class apple_red_1 against every class, with the shared stand-in weights,
side by side with what pytorch-fid computed (shared/conformance/pytorch_fid_reference.json)."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import fidrs

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> int:
    data = SHARED / "data" / "fruits360-apples" / "training"
    weights = SHARED / "conformance" / "random_fid_inception.pth"
    reference = json.loads((SHARED / "conformance" / "pytorch_fid_reference.json").read_text())
    if not data.is_dir() or not weights.is_file():
        print(f"shared data not found under {SHARED}", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore", fidrs.SmallSampleWarning)
    start = time.perf_counter()
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    stats = {}
    for c in classes:
        stats[c] = fidrs.stats(str(data / c), weights=str(weights), progress=sys.stderr.isatty())
    ref = stats["apple_red_1"]
    expected = reference["fid_training_apple_red_1_vs_training"]
    print(f"{'class':<22}{'n':>6}{'fidrs FID':>14}{'pytorch-fid':>14}{'|diff|':>11}")
    for c in classes:
        fid = fidrs.frechet_distance(ref.mu, ref.sigma, stats[c].mu, stats[c].sigma)
        print(f"{c:<22}{stats[c].n:>6}{fid:>14.5f}{expected[c]:>14.5f}{abs(fid - expected[c]):>11.2e}")
    n = sum(s.n for s in stats.values())
    seconds = time.perf_counter() - start
    print(f"\n{n} images in {seconds:.1f} s ({n / seconds:.1f} images/s), weights sha256 {ref.weights_sha256[:12]}…")
    print("(a rerun reads the features from fidrs' feature cache; `fidrs cache clear` first to time a cold run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
