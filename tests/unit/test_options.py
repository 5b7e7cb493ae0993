"""Options declared once (issue 24): every option is checked before any file is read or fetched (defect 4),
an unknown keyword names the valid ones, `FIDRS_NUM_THREADS` is read once, and a cluster worker gets the
driver's whole options value (defect 3), field by field."""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import subprocess
import sys

import fidrs
import pytest
from fidrs import _fidrs, config
from fidrs.options import Options, local_options, spec

# --- defect 4: checked before anything is read -------------------------------------------------------------


@pytest.fixture()
def nothing_is_read(monkeypatch):
    """Fail the test if an input is resolved or weights are resolved."""

    def touched(*args, **kwargs):
        raise AssertionError("an input or the weights were read before the options were checked")

    monkeypatch.setattr("fidrs.sources.resolve", touched)
    monkeypatch.setattr("fidrs.weights.resolve_model", touched)
    monkeypatch.setattr("fidrs.weights.resolve_checkpoint", touched)


@pytest.mark.parametrize(
    "options, reason",
    [
        (dict(device="gpu"), "device must be one of"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(batch_size=True), "batch_size must be a positive integer"),
        (dict(max_pixels=-1), "max_pixels must be a positive integer"),
        (dict(pad_color=(1, 2)), "pad_color must be three integers"),
        (dict(pad_color=(0, 0, 256)), "pad_color must be three integers"),
        (dict(backbone="resnet"), "unknown backbone 'resnet'"),
        (dict(mode="dgm-eval"), "backbone 'inception' has no preprocessing mode 'dgm-eval'"),
        (dict(weights_sha256="abc"), "weights_sha256 must be 64 hex digits"),
        (dict(weights="w.pth", model="m.onnx"), "not both"),
        (dict(skip_bad="yes"), "skip_bad must be True or False"),
        (dict(devcie="cpu"), "devcie.*the options are backbone, weights"),
    ],
)
def test_every_option_is_checked_before_any_file_is_read(nothing_is_read, tmp_path, options, reason):
    missing = str(tmp_path / "no-such-folder")
    for call in (
        lambda: fidrs.score(missing, missing, **options),
        lambda: fidrs.stats(missing, **options),
        lambda: fidrs.Evaluator(**options),
        lambda: fidrs.kid(missing, missing, **options),
    ):
        with pytest.raises(fidrs.InvalidInputError, match=reason):
            call()


def test_metric_parameters_are_checked_before_any_image_is_read(nothing_is_read, tmp_path):
    missing = str(tmp_path / "none")
    for call, reason in (
        (lambda: fidrs.kid(missing, missing, subsets=0), "subsets must be an integer >= 1"),
        (lambda: fidrs.kid(missing, missing, subset=5), "kid has no parameter or option subset"),
        (lambda: fidrs.inception_score(missing, splits=0), "splits must be an integer >= 1"),
        (lambda: fidrs.precision_recall(missing, missing, k=-1), "k must be an integer >= 1"),
        (lambda: fidrs.memorization(reference=missing, generated=missing, threshold=float("nan")), "threshold"),
        (lambda: fidrs.fid_confidence(missing, missing, rounds=1), "rounds must be an integer >= 2"),
        (lambda: fidrs.score(missing, missing, method="sqrtm"), "method must be one of"),
        (lambda: fidrs.inception_score(missing, backbone="dinov2"), "needs class logits"),
    ):
        with pytest.raises(fidrs.InvalidInputError, match=reason):
            call()


def _threads_in_a_fresh_process(value: str | None) -> str:
    """What `config.num_threads()` gives (or the error it raises) in a new interpreter with FIDRS_NUM_THREADS
    = `value`: the variable is read once per process, so each value needs its own."""
    env = {k: v for k, v in os.environ.items() if k != "FIDRS_NUM_THREADS"}
    if value is not None:
        env["FIDRS_NUM_THREADS"] = value
    code = (
        "from fidrs import config, errors\n"
        "try:\n    print(config.num_threads())\n"
        "except errors.InvalidInputError as e:\n    print('InvalidInputError:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_thread_count_is_read_once_with_the_rust_core_s_rule(monkeypatch):
    # One rule, the Rust core's (src/threads.rs, `_fidrs.configured_threads`): unset means every CPU this
    # process may use; otherwise a whole number from 1 to MAX_THREADS_PER_CPU × those CPUs.
    cpus = len(os.sched_getaffinity(0))
    limit = _fidrs.MAX_THREADS_PER_CPU * cpus
    assert _threads_in_a_fresh_process(None) == str(cpus)
    assert _threads_in_a_fresh_process("3") == "3"
    assert _threads_in_a_fresh_process(str(limit)) == str(limit)
    # 0 (once "every core" in Rust and refused in Python), over the bound (100000 hung at import), an
    # overflowing number (it passed) and text: refused, naming the variable and the bound.
    for bad in ("0", str(limit + 1), "100000", "99999999999999999999", "abc"):
        out = _threads_in_a_fresh_process(bad)
        assert out.startswith("InvalidInputError:") and "FIDRS_NUM_THREADS" in out, (bad, out)
        assert f"from 1 to {limit}" in out, (bad, out)
    # Read once: a later change of the variable in this process changes nothing, even with the cache cleared.
    config.num_threads.cache_clear()
    try:
        first = config.num_threads()
        monkeypatch.setenv("FIDRS_NUM_THREADS", "abc")
        config.num_threads.cache_clear()
        assert config.num_threads() == first == _fidrs.configured_threads()
    finally:
        config.num_threads.cache_clear()


# --- declared once -----------------------------------------------------------------------------------------


def test_the_cli_flags_the_api_keywords_and_the_defaults_are_one_declaration():
    parser = argparse.ArgumentParser()
    Options.add_arguments(parser)
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert sorted(flags) == sorted(f.name for f in dataclasses.fields(Options) if spec(f).cli)
    assert Options.from_arguments(parser.parse_args([])) == Options()
    parsed = Options.from_arguments(parser.parse_args(["--batch-size", "7", "--no-cache", "--pad-color", "1,2,3"]))
    assert parsed == Options(batch_size=7, cache=False, pad_color=(1, 2, 3))
    assert "dinov2" in flags["backbone"].choices  # read from the registry
    assert set(Options.names()) == set(fidrs.Options.names())


def test_a_registered_backbone_is_a_choice_without_editing_fidrs(tiny):
    parser = argparse.ArgumentParser()
    Options.add_arguments(parser)
    assert "tiny" in next(a for a in parser._actions if a.dest == "backbone").choices
    assert "padded" in next(a for a in parser._actions if a.dest == "mode").choices
    resolved = Options(backbone="tiny", mode="padded", pad_color=(0, 0, 0)).resolve()
    assert resolved.mode_label == "padded(0,0,0)" and resolved.preprocessing.size == 16


# --- defect 3: the workers get the whole options value -------------------------------------------------------

# A value other than the default for every option; adding an option without a value here fails the test, so
# that whoever adds one decides how it reaches the workers.
NON_DEFAULT = {
    "backbone": "dinov2-vits14",
    "weights": "/elsewhere/dinov2_vits14.pth",
    "weights_sha256": "ab" * 32,
    "model": None,  # with weights= it would be refused; `model` is exercised below
    "mode": "dgm-eval",
    "ref_mode": "dgm-eval",
    "allow_mode_mismatch": True,
    "batch_size": 7,
    "device": "cpu",
    "skip_bad": True,
    "pad_color": (1, 2, 3),
    "max_pixels": 12345,
    "allow_tf32": True,
    "progress": True,
    "cache": False,
}


def test_a_cluster_worker_resolves_every_option_the_driver_has(monkeypatch):
    from fidrs.distributed import worker
    from fidrs.distributed.driver import worker_options

    assert set(NON_DEFAULT) == set(Options.names()), "give every option a non-default value here"
    driver = Options(**NON_DEFAULT).resolve()
    seen = {}
    monkeypatch.setattr(worker, "FeaturePass", lambda resolved, model: seen.setdefault("resolved", resolved))
    shipped = worker.ShippedGraph("g.onnx", b"graph", None, None, "f" * 64, "a" * 64, "b" * 64, "w.pth")
    payload = pickle.loads(pickle.dumps(worker_options(driver)))  # what Ray sends (cloudpickle pickles this too)
    worker.network_of(payload.resolve(), shipped)
    on_worker = seen["resolved"]
    local = set(local_options())
    assert local == {"progress", "cache"}  # machine-local: the driver shows progress; no cache on a cluster
    for f in dataclasses.fields(Options):
        mine, theirs = getattr(driver.options, f.name), getattr(on_worker.options, f.name)
        if f.name in local:
            assert theirs == spec(f).on_workers, f.name
        else:
            assert theirs == mine, f.name
    assert on_worker.backbone is driver.backbone and on_worker.mode is driver.mode
    assert on_worker.mode_label == driver.mode_label


def test_a_worker_never_reads_the_driver_s_graph_file(tmp_path):
    """`model=` names a file on the driver's machine: the worker gets the backbone by name and the graph shipped."""
    from fidrs.distributed.driver import worker_options

    driver = Options(backbone="inception", model=str(tmp_path / "exported.onnx")).resolve()
    payload = worker_options(driver)
    assert payload.model == driver.options.model and payload.backbone == "inception"
    assert payload.resolve().backbone is driver.backbone  # resolved without opening the (absent) file
