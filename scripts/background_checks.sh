#!/usr/bin/env bash
# The checks that need no test of pytest's: the wheel smoke test, the Rust unit tests and clippy, one after the
# other (they share cargo's target folder). scripts/test.sh runs this at idle priority beside pytest, whose
# networks leave a core idle for minutes at a time (single-threaded tests on one worker while the other waits).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== $1 (at +${SECONDS} s)"; }
step "wheel (built, installed without Rust on PATH, smoke-tested)"
bash scripts/wheel_smoke.sh
# cargo's test build configures PyO3 for an embedded interpreter and rebuilds the PyO3 crates and fidrs' test
# binary (~45 s); setup.sh's release build is the one the wheel above reused.
step "cargo test"
cargo test --release --lib
step "cargo clippy (every target, warnings are errors)"
cargo clippy --release --all-targets -- -D warnings
step "end"
