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
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[cpu,test,ray]"
