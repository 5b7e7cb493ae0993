#!/usr/bin/env bash
# Prepare what the GPU check needs on the GPU machine (no internet there, 64 MiB per device call with the working
# tree): build the fidrs abi3 wheel, download onnxruntime-gpu and the cp312 manylinux wheels of what the check
# imports, lay them out in the git-ignored carry folders .gpu1, .gpu2, … (one per call, the large runtime wheel
# cut into chunks), and print the exact sequence of device calls (also in .gpu-build/CALLS.txt).
#
#   bash scripts/gpu_carry.sh                     # onnxruntime-gpu 1.31.1 for CPython 3.12 (the GPU machine)
#   bash scripts/gpu_carry.sh --python 3.11 --runtime onnxruntime==1.32.0
#                                                 # a CPU rehearsal for this machine's Python, then:
#                                                 # bash scripts/gpu_check.sh --receive; ... --dry-run --from-carry
# Options: --python X.Y, --runtime SPEC, --part-mib N (default 60), --budget-s S (the check's, default 270).
#
# The carried dependencies are pinned to the versions in .venv (what the tests ran with), downloaded with
# --no-deps so that nothing else rides along:
#   numpy                                   fidrs, onnx and onnxruntime
#   onnx, protobuf, ml_dtypes, typing_extensions
#                                           fidrs builds the networks' graphs with onnx; the rest are its requirements
#   flatbuffers, packaging                  onnxruntime-gpu's requirements (with numpy and protobuf)
#   pillow                                  the check writes its synthetic JPEGs with it (bench/synthetic.py)
#   tqdm, safetensors                       fidrs' own small runtime dependencies
# Not carried: scipy (35 MB; fidrs imports it only for method="scipy", which the check does not use) and
# onnxruntime's optional extras (sympy: symbolic shape inference tools). The CUDA libraries are the machine's own.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYVER=3.12
RUNTIME=onnxruntime-gpu==1.31.1
PART_MIB=60
BUDGET_S=270
while (($#)); do
  case "$1" in
    --python) PYVER=$2; shift ;;
    --runtime) RUNTIME=$2; shift ;;
    --part-mib) PART_MIB=$2; shift ;;
    --budget-s) BUDGET_S=$2; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
VENV_PY=$ROOT/.venv/bin/python
BUILD=$ROOT/.gpu-build
TAG=cp${PYVER/./}
rm -rf "$BUILD/dist" "$BUILD/wheels"
mkdir -p "$BUILD/dist" "$BUILD/wheels"

echo "== fidrs wheel (maturin build --release: abi3, so one wheel serves CPython 3.9+)"
MATURIN=$(command -v maturin || true)
if [[ -z $MATURIN ]]; then
  "$VENV_PY" -m pip install -q "maturin>=1.5,<2"
  MATURIN=$ROOT/.venv/bin/maturin
fi
"$MATURIN" build --release --out "$BUILD/dist" 2>&1 | grep -E "Built wheel|warning:|error" || true
FIDRS_WHEEL=$(ls "$BUILD"/dist/fidrs-*-abi3-*.whl)
case "$FIDRS_WHEEL" in *manylinux*) ;; *) echo "not a manylinux wheel: $FIDRS_WHEEL" >&2; exit 1 ;; esac

PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64)
DOWNLOAD=("$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$PYVER"
  "${PLATFORMS[@]}" -d "$BUILD/wheels")

echo "== $RUNTIME for $TAG"
"${DOWNLOAD[@]}" "$RUNTIME"
RUNTIME_WHEEL=$(ls "$BUILD"/wheels/onnxruntime*.whl)

DEPS=(numpy onnx protobuf ml_dtypes typing_extensions flatbuffers packaging pillow tqdm safetensors)
PINNED=$("$VENV_PY" - "${DEPS[@]}" <<'PY'
import importlib.metadata as m
import sys

print(" ".join(f"{name}=={m.version(name)}" for name in sys.argv[1:]))
PY
)
echo "== dependencies for $TAG: $PINNED"
# shellcheck disable=SC2086
"${DOWNLOAD[@]}" $PINNED
SMALL=("$FIDRS_WHEEL")
for w in "$BUILD"/wheels/*.whl; do
  [[ $w == "$RUNTIME_WHEEL" ]] || SMALL+=("$w")
done

echo "== carry folders"
"$VENV_PY" scripts/gpu_carry.py pack --root "$ROOT" --runtime "$RUNTIME_WHEEL" --small "${SMALL[@]}" \
  --part-mib "$PART_MIB" --python-tag "$TAG" --budget-s "$BUDGET_S"
