#!/usr/bin/env bash
# Install fidrs from source and run every test: Rust unit tests, then the Python suite (conformance included).
set -euo pipefail
cd "$(dirname "$0")/.."
phase() { echo "== $1 (at ${SECONDS} s)"; }  # each phase's start, in seconds since this script began
phase setup
bash scripts/setup.sh
phase "ruff (lint and format); the package's structure (import cycles, public surface) is a pytest test"
.venv/bin/python -m pip install -q ruff
.venv/bin/ruff check python tests bench scripts
.venv/bin/ruff format --check python tests
phase "wheel (built, installed without Rust on PATH, smoke-tested)"
bash scripts/wheel_smoke.sh
# After the wheel: cargo's test build is given the interpreter maturin's builds were (scripts/pyo3_env.sh), so
# it compiles fidrs' tests and reuses every dependency maturin built, PyO3 included (~10 s less).
# Clippy lints the library while cargo compiles its tests: clippy-driver as the workspace's rustc (what
# `cargo clippy` runs too) with `-D warnings` (CLIPPY_ARGS, the argument channel cargo-clippy itself uses).
# A separate `cargo clippy` type-checks every dependency again (~45 s here); the workspace wrapper leaves the
# dependencies' builds as setup.sh made them and costs ~4 s. The test build is the whole library (src/ has no
# `cfg(not(test))` code); the two timing examples are linted by `cargo clippy --all-targets` (README, "Tests").
phase "cargo test, linted by clippy (warnings are errors)"
. scripts/pyo3_env.sh
driver=$(command -v clippy-driver) || { echo "clippy-driver is not on PATH (rustup component add clippy)" >&2; exit 1; }
lints=target/cargo-test.log  # beside the build it describes, not a temporary file left behind
RUSTC_WORKSPACE_WRAPPER="$driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
  cargo test --release --lib 2>&1 | tee "$lints"
if grep -qE '^(warning|error)(\[|:)' "$lints"; then  # a lint that did not fail the build is a failure too
  echo "clippy or rustc reported warnings: failing on purpose" >&2
  exit 1
fi
phase pytest
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --durations=25 "$@"  # the slowest 25 in every CI log: the 20-minute budget
status=$?
set -e
phase "end: pytest exit ${status}"
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
