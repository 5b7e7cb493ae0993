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
# The wheel smoke test, cargo test and clippy run beside pytest at idle priority (SCHED_IDLE, else nice 19): they
# take only the core time pytest leaves idle, so they cost it nothing and the run ~1.5 minutes less.
phase "wheel, cargo test and clippy (scripts/background_checks.sh), in the background at idle priority"
background_log=$(mktemp)
if command -v chrt >/dev/null && chrt --idle 0 true 2>/dev/null; then
  idle=(chrt --idle 0)
else
  idle=(nice -n 19)
fi
"${idle[@]}" bash scripts/background_checks.sh > "$background_log" 2>&1 &
background_pid=$!
# Ending this script early (Ctrl-C, a failed step) ends the background checks too.
trap 'pkill -TERM -P "$background_pid" 2>/dev/null; kill "$background_pid" 2>/dev/null; true' EXIT
phase pytest
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --durations=25 "$@"  # the slowest 25 in every CI log: the 20-minute budget
status=$?
set -e
phase "pytest exit ${status}; waiting for the background checks"
background_status=0
wait "$background_pid" || background_status=$?
cat "$background_log"
rm -f "$background_log"
phase "end: pytest exit ${status}, background checks exit ${background_status}"
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
if [ "$status" -eq 0 ] && [ "$background_status" -ne 0 ]; then
  echo "the wheel smoke test, cargo test or clippy failed (their log is above)" >&2
  exit 1
fi
exit "$status"
