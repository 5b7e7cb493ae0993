"""The CLI with references: `fidrs refs list|info|fetch`, `ref:NAME` and every reader's format as `score` inputs,
`--ref-mode` / `--allow-mode-mismatch`, `fidrs stats` with several backbones; and bad, crafted, truncated or
mismatched reference inputs ending with exit 2 and one message naming the file, never a traceback."""

from __future__ import annotations

import json
import os
import pickle
import socket

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import serve_folder, write_images
from fidrs.references import list_references


@pytest.fixture()
def env(tmp_path, capsys):
    """A fresh cache and no reference variables inherited from the caller; `cli` runs the command in this
    process with exactly this environment (its captured output through this test's capsys)."""
    global _capsys
    _capsys = capsys
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIDRS_REF_")}
    yield {**clean, "FIDRS_CACHE": str(tmp_path / "cache")}
    _capsys = None


_capsys = None  # the running test's capsys, set by the `env` fixture


def cli(*args, env):
    """`fidrs ARGS` in this process (tests/plumbing/cli_in_process.py), with os.environ replaced by `env` for
    the call: what a subprocess given that environment would print and return, without a fresh interpreter's
    ~0.3 s start. fidrs reads every variable when it is used (fidrs/config.py), never at import."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return run_cli_here(_capsys, *args, deadline_s=120)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _bad(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and out.stderr.count("fidrs: error:") == 1, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr


# The Inception's statistics are pool3's, 2048-d (what the catalogue says of EDM's files, what an ADM batch and
# EDM2's `fid` hold), DINOv2 ViT-L/14's 1024-d (EDM2's `fd_dinov2`): fidrs refuses them at another size.
POOL3, DINOV2_L = 2048, 1024


def _stats(path, d=5, seed=0, shift=0.0, **extra):
    x = np.random.default_rng(seed).normal(size=(20, d))
    np.savez(path, mu=x.mean(0) + shift, sigma=np.cov(x, rowvar=False), **extra)
    return str(path)


# --- fidrs refs -------------------------------------------------------------------------------------------------


def test_refs_list_as_a_table_and_as_json(env):
    table = cli("refs", "list", env=env)
    assert table.returncode == 0, table.stderr
    for name in ("adm/imagenet-256", "edm2/img512", "clean-fid/cifar10-train-32-clean", "ttur/cifar10-train"):
        assert name in table.stdout
    listed = cli("refs", "list", "--json", env=env)
    rows = json.loads(listed.stdout)["references"]
    assert [r["name"] for r in rows] == list_references()
    assert all(r["state"] == "not downloaded" for r in rows)
    edm2 = json.loads(cli("refs", "list", "--collection", "edm2", "--json", env=env).stdout)["references"]
    assert [r["name"] for r in edm2] == ["edm2/img512", "edm2/img64"]


def test_refs_info_is_json_and_an_unknown_name_is_exit_2(env):
    out = cli("refs", "info", "ref:img512", env=env)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert (
        info["name"] == "edm2/img512" and info["format"] == "edm2-pkl" and info["variable"] == "FIDRS_REF_EDM2_IMG512"
    )
    assert {(s["label"], s["backbone"], s["mode"]) for s in info["statistics"]} == {
        ("fid", "inception", "tf1"),
        ("fd_dinov2", "dinov2-vitl14", "edm2"),
    }
    _bad(cli("refs", "info", "imagenet-64", env=env), "ambiguous", "adm/imagenet-64", "edm/imagenet-64")
    _bad(cli("refs", "info", "nope", env=env), "unknown reference 'nope'")


def test_refs_fetch_downloads_verifies_and_then_reads_the_cache(env, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    _stats(served / "cifar10-32x32.npz", d=POOL3)
    with serve_folder(served) as url:
        out = cli("refs", "fetch", "edm/cifar10-32", "--url", f"{url}/cifar10-32x32.npz", "--json", env=env)
        assert out.returncode == 0, out.stderr
        fetched = json.loads(out.stdout)
    cached = tmp_path / "cache" / "references" / "edm" / "cifar10-32x32.npz"
    assert fetched["path"] == str(cached) and fetched["state"] == "downloaded"
    assert cached.read_bytes() == (served / "cifar10-32x32.npz").read_bytes()
    # The server is gone: the cached copy serves, and a pin that differs is refused naming the file.
    again = cli("refs", "fetch", "edm/cifar10-32", env=env)
    assert again.returncode == 0 and str(cached) in again.stdout, again.stderr
    _bad(cli("refs", "fetch", "edm/cifar10-32", "--sha256", "0" * 64, env=env), str(cached), "pins")


def test_refs_fetch_offline_is_one_error_saying_how_to_supply_the_file(env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = cli(
        "score",
        "ref:imagenet-256",
        "ref:imagenet-256",
        env={**env, "FIDRS_REF_URL_ADM_IMAGENET_256": f"http://127.0.0.1:{port}/x.npz"},
    )
    _bad(out, "could not download the reference adm/imagenet-256", "VIRTUAL_imagenet256_labeled.npz")
    _bad(out, "FIDRS_REF_ADM_IMAGENET_256=PATH")


# --- score with references ---------------------------------------------------------------------------------------


def test_score_a_catalogued_reference_downloaded_from_its_mirror(env, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    _stats(served / "cifar10-32x32.npz", d=POOL3)
    other = _stats(tmp_path / "other.npz", d=POOL3, shift=1.0)
    with serve_folder(served) as url:
        out = cli(
            "score",
            "ref:edm/cifar10-32",
            other,
            "--json",
            env={**env, "FIDRS_REF_URL_EDM_CIFAR10_32": f"{url}/cifar10-32x32.npz"},
        )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # ‖Δμ‖² = 2048·1², equal Σ (the trace terms cancel to d·ε·tr Σ ≈ 5e-10 ≪ 2e-9)
    assert result["fid"] == pytest.approx(float(POOL3), rel=1e-12)
    described = result["references"]["ref:edm/cifar10-32"]
    assert described["statistics"]["inception"] == {
        "label": "mu,sigma",
        "n": None,  # EDM does not publish it, and its file does not record it
        "tool": "edm",
        "mode": "tf1",
        "provenance": "catalogue:edm/cifar10-32",
    }
    assert result["mode_a"] == "tf1" and result["mode_b"] is None and result["mode_mismatch_allowed"] is False


def test_score_an_edm2_pickle_takes_the_entry_of_the_backbone(env, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, POOL3)), rng.normal(size=(30, DINOV2_L))
    with open(tmp_path / "img64.pkl", "wb") as f:
        pickle.dump(
            {
                "num_images": 30,
                "fid": {"mu": x.mean(0), "sigma": np.cov(x.T)},
                "fd_dinov2": {"mu": y.mean(0), "sigma": np.cov(y.T)},
            },
            f,
        )
    np.savez(tmp_path / "d.npz", mu=y.mean(0), sigma=np.cov(y.T))
    out = cli("score", str(tmp_path / "img64.pkl"), str(tmp_path / "d.npz"), "--backbone", "dinov2", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fid"] == pytest.approx(0.0, abs=1e-9)  # the same statistics (round-off ~1e-14)
    _bad(
        cli("score", str(tmp_path / "img64.pkl"), str(tmp_path / "d.npz"), env=env),
        "different feature sizes",
        "img64.pkl",
    )


def test_score_refuses_a_contradicting_mode_naming_the_reference(env, tmp_path):
    folder = write_images(tmp_path / "gen", 2)
    np.savez(
        tmp_path / "adm.npz",
        mu=np.zeros(POOL3),
        sigma=np.eye(POOL3),
        mu_s=np.zeros(2),
        sigma_s=np.eye(2),
        arr_0=np.zeros((2, 8, 8, 3), np.uint8),
    )
    out = cli("score", str(folder), str(tmp_path / "adm.npz"), "--mode", "pytorch-fid", env=env)
    _bad(out, f"{tmp_path / 'adm.npz'} was made in mode tf1", "--allow-mode-mismatch")
    _bad(
        cli("score", str(folder), str(tmp_path / "adm.npz"), "--ref-mode", "clean", env=env),
        "--ref-mode clean contradicts",
    )
    _bad(cli("score", str(folder), str(folder), "--ref-mode", "clean", env=env), "none of the inputs is one")


def test_allow_mode_mismatch_runs_and_the_json_says_so(tiny, tmp_path, capsys):
    from fidrs import cli as fidrs_cli

    _, checkpoint = tiny
    a, b = write_images(tmp_path / "a", 12, seed=1), write_images(tmp_path / "b", 10, seed=2)
    common = ["--backbone", "tiny", "--weights", checkpoint, "--no-progress"]
    assert fidrs_cli.main(["stats", str(a), "-o", str(tmp_path / "ref.npz"), "--mode", "padded", *common]) == 0
    assert fidrs_cli.main(["score", str(tmp_path / "ref.npz"), str(b), "--json", *common]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["mode"] == "padded" and default["mode_mismatch_allowed"] is False
    assert fidrs_cli.main(["score", str(tmp_path / "ref.npz"), str(b), "--mode", "plain", *common]) == 2
    assert "was made in mode padded" in capsys.readouterr().err
    args = ["score", str(tmp_path / "ref.npz"), str(b), "--mode", "plain", "--allow-mode-mismatch", "--json", *common]
    assert fidrs_cli.main(args) == 0
    captured = capsys.readouterr()
    allowed = json.loads(captured.out)
    assert allowed["mode_mismatch_allowed"] is True and (allowed["mode_a"], allowed["mode_b"]) == ("padded", "plain")
    assert "not comparable" in allowed["notes"][0]


# --- fidrs stats with several backbones ---------------------------------------------------------------------


def test_stats_with_several_backbones_writes_one_file_every_reader_accepts(tiny, tmp_path, monkeypatch, capsys):
    import dataclasses

    import tiny_backbone
    from fidrs import cli as fidrs_cli
    from fidrs.references import read_reference

    _, checkpoint = tiny
    fidrs.register_backbone(dataclasses.replace(tiny_backbone.backbone(), name="tiny2"), replace=True)
    try:
        monkeypatch.setenv("FIDRS_WEIGHTS_TINY", checkpoint)
        monkeypatch.setenv("FIDRS_WEIGHTS_TINY2", tiny_backbone.write_checkpoint(tmp_path / "t2.npz", seed=4))
        a, b = write_images(tmp_path / "a", 12, seed=1), write_images(tmp_path / "b", 10, seed=2)
        args = ["stats", str(a), "--backbone", "tiny", "--backbone", "tiny2", "-o", str(tmp_path / "ref.npz")]
        assert fidrs_cli.main([*args, "--no-progress"]) == 0
        assert "saved tiny, tiny2 statistics of 12 images" in capsys.readouterr().err
        ref = read_reference(tmp_path / "ref.npz")
        assert list(ref.entries) == ["tiny", "tiny2"]
        for name in ("tiny", "tiny2"):
            assert fidrs_cli.main(["score", str(tmp_path / "ref.npz"), str(b), "--backbone", name, "--json"]) == 0
            assert json.loads(capsys.readouterr().out)["fid"] == fidrs.score(str(a), str(b), backbone=name)
        # fidrs merge keeps every backbone: the merged shards equal the statistics of the union (the moments add
        # exactly up to float64 summation order: the tolerances of test_cli.py's merge test).
        args_b = ["stats", str(b), "--backbone", "tiny", "--backbone", "tiny2", "-o", str(tmp_path / "b.npz")]
        assert fidrs_cli.main([*args_b, "--no-progress"]) == 0
        merged = tmp_path / "ab.npz"
        assert fidrs_cli.main(["merge", str(tmp_path / "ref.npz"), str(tmp_path / "b.npz"), "-o", str(merged)]) == 0
        union = sorted(map(str, a.iterdir())) + sorted(map(str, b.iterdir()))
        for name in ("tiny", "tiny2"):
            m, u = fidrs.Stats.load(merged, name), fidrs.stats(union, backbone=name)
            assert m.n == u.n == 22 and m.backbone == name
            np.testing.assert_allclose(m.mu, u.mu, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(m.sigma, u.sigma, rtol=1e-9, atol=1e-12)
        capsys.readouterr()
        assert fidrs_cli.main([*args, "--weights", checkpoint]) == 2
        assert "weights names one backbone's network" in capsys.readouterr().err
        assert fidrs_cli.main([*args, "--ray"]) == 2
        assert "drop --ray" in capsys.readouterr().err
    finally:
        fidrs.backbones.unregister_backbone("tiny2")


# --- hostile reference inputs: exit 2, the file named ----------------------------------------------------------


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _edm2_bytes(**stats) -> bytes:
    x = np.random.default_rng(0).normal(size=(20, POOL3))
    return pickle.dumps({"num_images": 20, "fid": {"mu": x.mean(0), "sigma": np.cov(x.T)}, **stats})


def _hostile(tmp_path) -> dict[str, tuple[bytes, str]]:
    """name → (content, the reason the message gives)."""
    marker = tmp_path / "pwned"
    adm = tmp_path / "adm_full.npz"
    np.savez(
        adm,
        mu=np.zeros(POOL3),
        sigma=np.eye(POOL3),
        mu_s=np.zeros(2),
        sigma_s=np.eye(2),
        arr_0=np.zeros((4, 8, 8, 3), np.uint8),
    )
    full = adm.read_bytes()
    good_pickle = _edm2_bytes()
    np.savez(tmp_path / "m.npz", mu=np.zeros(3), sigma=np.eye(4))
    np.savez(tmp_path / "nan.npz", mu=np.full(3, np.nan), sigma=np.eye(3))
    np.savez(tmp_path / "neg.npz", mu=np.zeros(3), sigma=-np.eye(3))
    np.savez(tmp_path / "img.npz", arr_0=np.zeros((2, 8, 8), np.float32))
    np.save(tmp_path / "f.npy", np.zeros((1, 4), np.float32))
    return {
        "payload.pkl": (
            pickle.dumps({"num_images": _Payload(str(marker))}),
            "names posix.system, which is not allowed",
        ),
        "truncated.pkl": (good_pickle[: len(good_pickle) // 2], "not a readable pickle"),
        "empty.pkl": (b"", "empty file"),
        "no_num_images.pkl": (pickle.dumps({"fid": {}}), "has no num_images"),
        "list.pkl": (pickle.dumps([1, 2]), "not EDM2's dict of statistics"),
        "object.pkl": (
            pickle.dumps({"num_images": 5, "fid": {"mu": np.zeros(2, object), "sigma": np.eye(2)}}),
            "only booleans, integers and floats",
        ),
        "truncated_adm.npz": (full[: len(full) // 2], "not a readable .npz"),
        "shapes.npz": ((tmp_path / "m.npz").read_bytes(), "do not fit together"),
        "nan.npz": ((tmp_path / "nan.npz").read_bytes(), "NaN"),
        "negative.npz": ((tmp_path / "neg.npz").read_bytes(), "not positive semi-definite"),
        "images.npz": ((tmp_path / "img.npz").read_bytes(), "expected uint8 N×H×W×3"),
        "one_row.npy": ((tmp_path / "f.npy").read_bytes(), "statistics need at least 2"),
        "npy_as.npz": ((tmp_path / "f.npy").read_bytes(), "a .npy array, not an .npz archive"),
    }


def test_bad_crafted_truncated_and_mismatched_references_exit_2_naming_the_file(env, tmp_path):
    good = _stats(tmp_path / "good.npz")
    for name, (content, reason) in _hostile(tmp_path).items():
        path = tmp_path / name
        path.write_bytes(content)
        _bad(cli("score", str(path), good, env=env), str(path), reason)
    assert not (tmp_path / "pwned").exists()  # the payload never ran


def test_a_reference_fifo_is_refused_without_blocking(env, tmp_path):
    fifo = tmp_path / "ref.pkl"
    os.mkfifo(fifo)
    _bad(cli("score", str(fifo), _stats(tmp_path / "good.npz"), env=env), str(fifo), "FIFO")


def test_a_local_copy_that_is_not_the_reference_is_refused(env, tmp_path):
    np.savez(tmp_path / "kid.npz", feats=np.zeros((4, 3), np.float32))
    out = cli(
        "score",
        "ref:edm/cifar10-32",
        _stats(tmp_path / "good.npz"),
        env={**env, "FIDRS_REF_EDM_CIFAR10_32": str(tmp_path / "kid.npz")},
    )
    _bad(out, "kid.npz")
