#!/usr/bin/env bash
# The GPU check, on the GPU machine (see scripts/gpu_carry.sh, which prints the calls to make):
#
#   bash scripts/gpu_check.sh --receive        # a call that carries one folder .gpuK: check its chunks, install
#                                              # every wheel that is whole into .gpu-site (pip --no-index --target)
#   bash scripts/gpu_check.sh [--budget-s S] [--only NETS]
#                                              # the last call: the same, then the check (bench/gpu_check.py) with
#                                              # .gpu-site first on the path and the system's site-packages off
#   bash scripts/gpu_check.sh --dry-run        # here, on the CPU: every step with tiny sizes (.venv's Python)
#   bash scripts/gpu_check.sh --dry-run --from-carry
#                                              # the GPU machine's path on the CPU, from carried CPU wheels
#
# Reports go to $OUT (the device call's output folder; default bench/out/gpu-check): gpu-check.md, gpu-check.json,
# logs/, nvidia-smi before/after, receive.log, env.txt. Exit status: the check's (0: no item failed, 1: some
# failed), 3 when the carried wheels are incomplete, 4 when a chunk was damaged in transfer, 5 when pip
# refused a wheel (glibc or Python too old for it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=check
DRY=0
ARGS=()
while (($#)); do
  case "$1" in
    --receive) MODE=receive ;;
    --dry-run) DRY=1 ;;
    --from-carry) MODE=carry-dry ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
OUT=${OUT:-$ROOT/bench/out/gpu-check}
mkdir -p "$OUT"

if [[ $DRY == 1 && $MODE != carry-dry ]]; then
  exec "${PYTHON:-$ROOT/.venv/bin/python}" bench/gpu_check.py --dry-run --out "$OUT" "${ARGS[@]+"${ARGS[@]}"}"
fi

SITE=$ROOT/.gpu-site
# The interpreter the wheels were carried for (their tag is in the manifest): python3, else python3.N.
TAG=$(python3 scripts/gpu_carry.py tag --root "$ROOT" || true)
PY=${PYTHON:-}
if [[ -z $PY ]]; then
  for candidate in python3 "python3.${TAG#cp3}"; do
    if command -v "$candidate" >/dev/null &&
      [[ $("$candidate" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")') == "$TAG" ]]; then
      PY=$(command -v "$candidate")
      break
    fi
  done
fi
if [[ -z $PY ]]; then
  echo "no Python for the carried wheels' tag ${TAG:-?} (python3 is $(python3 --version 2>&1))" >&2
  exit 3
fi

if [[ ! -f $OUT/env.txt ]]; then
  {
    echo "python: $PY ($("$PY" --version 2>&1)); pip: $("$PY" -m pip --version 2>&1 | head -1)"
    echo "nvidia-smi -L: $(nvidia-smi -L 2>&1 || true)"
    echo "CUDA library directories found: $("$PY" bench/gpu_check_env.py cuda-lib-dirs | paste -sd' ' -)"
    echo "glibc: $(ldd --version 2>&1 | head -1)"
    echo "disk: $(df -h "$ROOT" | tail -1)"
  } >"$OUT/env.txt"
fi
set +e
"$PY" scripts/gpu_carry.py receive --root "$ROOT" --site "$SITE" --python "$PY" 2>&1 | tee -a "$OUT/receive.log"
status=${PIPESTATUS[0]}
set -e
((status == 0)) || exit "$status"
cat "$OUT/env.txt"

# The CUDA libraries onnxruntime-gpu loads (CUDA 13, cuDNN 9) where this machine has them: NVIDIA's pip packages in
# the system's site-packages are invisible to the check's Python (-S), so their directories go on the loader's path.
CUDA_DIRS=$("$PY" bench/gpu_check_env.py cuda-lib-dirs | paste -sd: -)
export LD_LIBRARY_PATH=$CUDA_DIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [[ $MODE == receive ]]; then
  MISSING=$("$PY" bench/gpu_check_env.py missing-cuda-libs | paste -sd' ' -)
  [[ -z $MISSING ]] || echo "WARNING: CUDA libraries not found on this machine: $MISSING (the CUDA provider will not load)"
  exit 0
fi
"$PY" scripts/gpu_carry.py complete --root "$ROOT" --site "$SITE" || exit 3

# -S: no site-packages at all, so the machine's own onnxruntime (CPU) can neither shadow nor sit beside the
# carried onnxruntime-gpu (fidrs refuses two runtimes); PYTHONPATH=.gpu-site is all the check imports from.
DRY_ARG=()
[[ $MODE == carry-dry ]] && DRY_ARG=(--dry-run)
export PYTHONPATH=$SITE
"$PY" -S -c 'import fidrs, onnxruntime, sys; print("fidrs", fidrs.__version__, "from", fidrs.__file__,
"| onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())'
# The graphs (GiBs for the ViTs) and JPEGs go to .gpu-work on the repository's disk (git-ignored; graphs deleted at
# the end, the JPEGs kept for a rerun).
exec "$PY" -S bench/gpu_check.py --out "$OUT" --work "$ROOT/.gpu-work" "${DRY_ARG[@]+"${DRY_ARG[@]}"}" \
  "${ARGS[@]+"${ARGS[@]}"}"
