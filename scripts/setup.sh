#!/usr/bin/env bash
# Create .venv (if needed) and install fidrs into it, built from source (Rust via maturin).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# NASM assembles libjpeg-turbo's SIMD JPEG decoder on x86; the build refuses to go without it (build.rs).
case "$(uname -m)" in
  x86_64 | i?86)
    if ! command -v nasm >/dev/null; then
      if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq nasm >/dev/null
      elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n apt-get update -qq && sudo -n apt-get install -y -qq nasm >/dev/null
      else
        echo "fidrs needs NASM to build its SIMD JPEG decoder: install the nasm package (apt, dnf, brew)" >&2
        exit 1
      fi
    fi
    ;;
esac
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip "maturin>=1.5,<2"
# One release build, by the venv's maturin, as scripts/wheel_smoke.sh builds (cargo then finds it done): `pip
# install .` would build in an isolated environment whose other interpreter rebuilds PyO3 and fidrs, ~45 s each way.
rm -rf dist
. scripts/pyo3_env.sh  # maturin's interpreter (-i) is the one cargo's test build is given (test.sh)
# While maturin compiles (~140 s on every core), pip fetches and unpacks the dependencies that pyproject.toml
# lists for the extras installed below (mostly waiting on the network): 30 → 23 s outside the build here, the pip
# cache warm. Only a head start: the wheel's own metadata decides what is installed, after the build. Python < 3.11
# has no tomllib, and its list is empty (no head start).
EXTRAS=cpu,test,ray  # ONNX Runtime on the CPU, the test suite's tools, Ray for the cluster tier
.venv/bin/python - "$EXTRAS" > .venv/requirements.txt <<'PY'
import sys
try:
    import tomllib
except ImportError:
    raise SystemExit(0)
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
extras = project["optional-dependencies"]
print("\n".join(project["dependencies"] + [r for name in sys.argv[1].split(",") for r in extras[name]]))
PY
.venv/bin/python -m pip install -q --no-compile -r .venv/requirements.txt > .venv/dependencies.log 2>&1 &
dependencies=$!
built=0
.venv/bin/maturin build --release -i "$PYO3_PYTHON" --out dist > .venv/build.log 2>&1 || built=$?
if ! wait "$dependencies"; then
  cat .venv/dependencies.log >&2
  exit 1
fi
if [ "$built" -ne 0 ]; then
  cat .venv/build.log >&2
  exit 1
fi
WHEEL=$(ls dist/fidrs-*-abi3-*.whl)
# pip byte-compiles what it installs on one core; compileall does it afterwards on every core (~5 s less here:
# 32 s → 27 s for these packages, the pip cache warm). A file that does not compile (none here today) is left to
# import time, as pip leaves it: compileall's exit status is not the install's.
.venv/bin/python -m pip install -q --no-compile "$WHEEL[$EXTRAS]"
.venv/bin/python -m pip install -q --no-compile --force-reinstall --no-deps "$WHEEL"  # the build just made, same version or not
.venv/bin/python -m compileall -q -j 0 .venv/lib/python*/site-packages > .venv/compileall.log 2>&1 || true
