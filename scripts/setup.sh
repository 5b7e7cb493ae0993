#!/usr/bin/env bash
# Create .venv (if needed) and install fidrs into it, built from source (Rust via maturin).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[cpu,test,ray]"
