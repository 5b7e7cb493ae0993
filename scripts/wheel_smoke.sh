#!/usr/bin/env bash
# Build the abi3 wheel, install it into a fresh venv whose PATH has no Rust toolchain, and smoke-test it:
# the CLI's --json score of two small folders, the Python API, and the JPEG SIMD build (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${FIDRS_SHARED:-$ROOT/../shared}
.venv/bin/python -m pip install -q "maturin>=1.5,<2"
rm -rf dist
. scripts/pyo3_env.sh  # the interpreter setup.sh's build was configured for: cargo finds that build done
.venv/bin/maturin build --release -i "$PYO3_PYTHON" --out dist 2>&1 | grep -E "Built wheel|warning|error" || true
WHEEL=$(ls dist/fidrs-*-cp39-abi3-*.whl)
echo "== wheel: $WHEEL"
case "$WHEEL" in *manylinux*) ;; *) echo "not a manylinux wheel: $WHEEL" >&2; exit 1 ;; esac

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
# The new venv and the system's basic tools on PATH: no cargo, no rustc (checked), no maturin, nothing from the
# source checkout.
export PATH="$WORK/venv/bin:/usr/bin:/bin"
if command -v cargo >/dev/null || command -v rustc >/dev/null; then
  echo "a Rust toolchain is still on PATH" >&2; exit 1
fi
cd "$WORK"  # so that `import fidrs` cannot find the checkout's python/ folder
# The venv's own pip, as a user's fresh venv has it, not upgraded (~4 s): pip from 20.3 reads the wheel's
# manylinux_2_x and abi3 tags, and Python 3.11 bundles pip 23.2.
python -m pip install -q "$ROOT/$WHEEL[cpu]"

A="$SHARED/data/fruits360-apples/validation/apple_red_3"
B="$SHARED/data/fruits360-apples/validation/apple_golden_3"
WEIGHTS="$SHARED/conformance/random_fid_inception.pth"
export FIDRS_CACHE="$WORK/cache"
fidrs models  # the manifests (models/*.toml) are in the wheel
fidrs --version | tee "$WORK/version.txt"
grep -q "JPEG SIMD: yes" "$WORK/version.txt" || { echo "the wheel's JPEG decoder has no SIMD" >&2; exit 1; }
fidrs score "$A/4*_100.jpg" "$B/4*_100.jpg" --weights "$WEIGHTS" --json --no-progress > "$WORK/score.json"
python - "$WORK/score.json" "$A" "$B" "$WEIGHTS" <<'PY'
import json, math, sys, warnings

import fidrs

result = json.load(open(sys.argv[1]))  # stdout must be exactly one JSON object
a, b, weights = sys.argv[2:]
assert fidrs.__file__.startswith(sys.prefix), f"fidrs imported from {fidrs.__file__}, not the wheel"
warnings.simplefilter("ignore")
api = fidrs.score(f"{a}/4*_100.jpg", f"{b}/4*_100.jpg", weights=weights, cache=False)
assert result["n_a"] > 1 and result["n_b"] > 1 and math.isfinite(result["fid"]) and result["fid"] > 0, result
# Same process, same graph, same pixels: the CLI and the API give the same number.
assert abs(api - result["fid"]) <= 1e-12 * result["fid"], (api, result["fid"])
print(f"wheel smoke test passed: FID {result['fid']:.6f} over {result['n_a']} + {result['n_b']} images, "
      f"provider {result['provider']}")
PY
