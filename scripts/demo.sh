#!/usr/bin/env bash
# Install fidrs and compute the FID of training/apple_red_1 against every class of the shared fruit photos.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
