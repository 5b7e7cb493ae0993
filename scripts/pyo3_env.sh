# Sourced (from the repository root, after .venv exists) by setup.sh, wheel_smoke.sh and test.sh: every Rust
# build of fidrs configures PyO3 for one interpreter, the venv's, so that maturin's builds and cargo's test
# build share PyO3's build-script output. PyO3's build script reruns whenever PYO3_PYTHON or
# PYO3_ENVIRONMENT_SIGNATURE differs from the last build's (maturin sets both; a bare `cargo test` leaves them
# unset), and then pyo3, pyo3-ffi, its macros and numpy are compiled again (~10 s here). A wrong signature costs
# only that rebuild, never a wrong build: the extension is abi3 and links no libpython.
PYO3_PYTHON="$(pwd)/.venv/bin/python"
# maturin's `environment_signature()`: implementation-major.minor-pointer width.
PYO3_ENVIRONMENT_SIGNATURE=$("$PYO3_PYTHON" -c 'import platform, sys; v = sys.version_info
print("%s-%d.%d-%dbit" % (platform.python_implementation().lower(), v[0], v[1], 64 if sys.maxsize > 2**32 else 32))')
export PYO3_PYTHON PYO3_ENVIRONMENT_SIGNATURE
