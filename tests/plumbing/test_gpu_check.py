"""The rehearsed GPU check (scripts/gpu_check.sh, bench/gpu_check.py): its dry run on the CPU provider runs every
item and writes the report the GPU run will (so the script cannot rot before a GPU session uses it); the carry
folders reassemble and install; the random weights have the official layout; the bounds' arithmetic holds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, WEIGHTS

BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_carry  # noqa: E402
from gpu_check_bounds import fd_bound, fd_bound_measured  # noqa: E402
from gpu_check_plan import FP32_CEILING_FLOPS, Plan, network_items  # noqa: E402
from gpu_check_weights import inception_state  # noqa: E402
from onnx_costs import graph_costs  # noqa: E402

DRY_NETWORKS = ("inception", "dinov2-vits14", "clip-vitl14-336")
DEFAULT_MODES = {"inception": "pytorch-fid", "dinov2-vits14": "dgm-eval", "clip-vitl14-336": "cmmd"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """`gpu_check.sh --dry-run` once (≈ 25 s on 2 cores): the JSON report, the Markdown and the exit status."""
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = json.loads((out / "gpu-check.json").read_text()) if (out / "gpu-check.json").exists() else {}
    markdown = (out / "gpu-check.md").read_text() if (out / "gpu-check.md").exists() else ""
    return done, report, markdown


def _allowed_skip(item: str, summary: str) -> bool:
    """The only item a dry run may skip, for its one reason (every network, the CLIP included, runs)."""
    return item == "nvidia-smi" and shutil.which("nvidia-smi") is None and "no nvidia-smi" in summary


@pytest.mark.slow
def test_dry_run_runs_every_item(dry_run):
    done, report, markdown = dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    plan = Plan.dry()
    expected = ["nvidia-smi"] + [i for k, n in enumerate(DRY_NETWORKS) for i in network_items(plan, n, k == 0)]
    assert list(report["items"]) == expected
    assert report["counts"]["pending"] == 0 and report["counts"]["fail"] == 0
    for item, result in report["items"].items():
        if result["status"] != "pass":
            assert result["status"] == "skipped" and _allowed_skip(item, result["summary"]), (item, result)
        assert f"| {item} | {result['status'].upper()} |" in markdown  # one pass/fail line per item
    assert report["meta"]["dry_run"] is True and report["meta"]["elapsed_s"] <= report["meta"]["budget_s"]


@pytest.mark.slow
def test_dry_run_items_carry_their_measurements(dry_run):
    _, report, _ = dry_run
    items = report["items"]
    provider = items["provider"]["data"]
    assert provider["provider"] == "CPUExecutionProvider" == provider["session_providers"][0]
    assert provider["onnxruntime"] and provider["fidrs"]
    for name in DRY_NETWORKS:
        built = report["networks"][name]
        for precision in ("fp32", "tf32"):
            d = items[f"fidelity/{name}/{precision}"]["data"]
            # The dry run's "GPU" sessions are CPU sessions of the same graph on the same inputs: deterministic
            # kernels give identical rows, so any difference would be the check comparing the wrong rows.
            assert d["max_relative_error"] == 0.0 and d["fd_gpu"] == d["fd_cpu"] > 0, d
            assert d["depth"] == built["depth"] and d["images"] == 2 * Plan.dry().per_network(
                Plan.dry().fidelity_images, name
            )
        assert 0 < items[f"fidelity/{name}/fp32"]["data"]["fp32_bound"] < 1e-3
        for key, result in items.items():
            if key.startswith(f"throughput/{name}/"):
                d = result["data"]
                assert d["images_per_s"] > 0 and d["first_batch_s"] > 0 and d["iterations"] >= 1
                assert d["ratio_to_fp32_ceiling"] == pytest.approx(
                    d["images_per_s"] * built["flops"] / FP32_CEILING_FLOPS
                )
                assert d["memory_peak_bytes"] > 0  # the child's resident set on the CPU
        e2e = items[f"e2e/{name}"]["data"]
        assert e2e["images"] == Plan.dry().per_network(Plan.dry().e2e_images, name)
        assert e2e["max_relative_error_vs_cpu"] == 0.0 and e2e["images_per_s"] > 0
        assert e2e["bound_by"] in ("network", "host decode + preprocess")
        assert items[f"host/{name}"]["data"]["images_per_s"] > 0
    # Every network's inputs are made in its backbone's own default mode (the CLIP's: cmmd, square-crop fit).
    for name in DRY_NETWORKS:
        assert report["networks"][name]["mode"] == DEFAULT_MODES[name] == items[f"host/{name}"]["data"]["mode"]
        assert f"mode {DEFAULT_MODES[name]})" in items[f"host/{name}"]["summary"]


def _driver(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH / "gpu_check.py"), "--dry-run", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_cpu_fallback_fails_the_provider_item_and_nothing_else_runs(tmp_path):
    """Asking for CUDA where ONNX Runtime has none (this machine) is the silent fallback the check must refuse:
    the provider item fails naming the cause, every later item is skipped for that reason, exit status 1."""
    done = _driver(tmp_path, "--device", "cuda", "--only", "inception")
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert done.returncode == 1, done.stdout + done.stderr
    provider = report["items"]["provider"]
    assert provider["status"] == "fail" and "CUDAExecutionProvider" in provider["summary"], provider
    rest = {k: v for k, v in report["items"].items() if k not in ("provider", "nvidia-smi")}
    assert rest and all(v["status"] == "skipped" and "provider item failed" in v["summary"] for v in rest.values())
    assert "inception" in report["logs"] and "FAIL provider" in done.stdout


def test_a_budget_too_small_skips_rather_than_overruns(tmp_path):
    done = _driver(tmp_path, "--budget-s", "8")
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    assert done.returncode == 0, done.stdout + done.stderr
    networks = {k: v for k, v in report["items"].items() if k != "nvidia-smi"}
    assert all(v["status"] == "skipped" and v["summary"].startswith("budget") for v in networks.values())
    assert report["meta"]["elapsed_s"] <= 8


def test_inception_flops_depth_and_longest_reduction():
    """11.4 GFLOP per image is the Inception V3's published cost at 299² (5.7 G multiply-adds); the longest
    path has 47 convolutions and the fc layer; the longest reduction is Mixed_7b/c's 3×3 over 448 channels."""
    from fidrs.backbones.inception_graph import build_fid_inception

    costs = graph_costs(build_fid_inception(inception_state(0)))
    assert costs.flops == pytest.approx(11.43e9, rel=1e-3)
    assert costs.depth == 48 and costs.longest_reduction == 448 * 3 * 3


def test_vit_flops_equal_the_closed_form():
    """A DINOv2 of width D, depth L at 224² (T = 257 tokens): the patch embedding 2·256·D·588, per block the
    four linear layers 2·T·12D² and the two attention products 2·2·T²·D."""
    from fidrs.backbones.vit_graph import Architecture, build_dinov2, expected_shapes
    from gpu_check_weights import vit_state

    arch = Architecture(128, 2, "mlp", 37)
    costs = graph_costs(build_dinov2(vit_state(expected_shapes(arch), 0)))
    d, t = 128, 257
    assert costs.flops == 2 * 256 * d * 588 + arch.depth * (2 * t * 12 * d * d + 4 * t * t * d)
    assert costs.longest_reduction == max(3 * 14 * 14, 4 * d)  # the patch embedding, or fc2 when wider
    assert costs.depth == 1 + arch.depth * 6  # patch embedding; qkv, q·kᵀ, ·v, proj, fc1, fc2 per block


def test_random_inception_has_the_official_layout():
    """Every key, shape and dtype of pytorch-fid's checkpoint (the shared stand-in has the real file's)."""
    if not WEIGHTS.is_file():
        pytest.skip(f"shared conformance checkpoint not found at {WEIGHTS}")
    from fidrs.checkpoint import load_state_dict

    official = load_state_dict(WEIGHTS)
    ours = inception_state(0)
    assert sorted(ours) == sorted(official)
    assert all(ours[k].shape == official[k].shape and ours[k].dtype == official[k].dtype for k in official)


def test_the_clip_rows_use_the_cmmd_mode_with_its_square_crop_fit(tmp_path):
    """The CLIP rows' inputs are the backbone's own cmmd mode: google-research/cmmd's pixels (centred square,
    Pillow bicubic to 336; the tests' Pillow replica, itself equal to the official debug pixels in test_clip.py),
    network-normalised, on the check's square 256² JPEGs and on a wide image, where center-crop would differ."""
    from clip_support import cmmd_pixels, network_input
    from fidrs import _fidrs, backbones
    from gpu_check_fidrs import default_mode, load_inputs
    from gpu_check_items import write_jpegs
    from synthetic import synthetic_image

    mode = backbones.get("clip-vitl14-336").mode(None)
    assert default_mode("clip-vitl14-336") == mode.name == "cmmd" and dict(mode.spec)["fit"] == "square-crop"
    wide = tmp_path / "wide.png"
    synthetic_image(5).crop((0, 40, 256, 216)).save(wide)  # 256×176, lossless
    paths = [*write_jpegs(tmp_path / "jpegs", 3, 3, 1), str(wide)]
    ours = load_inputs(paths, "clip-vitl14-336")
    official = network_input(np.stack([cmmd_pixels(Path(p)) for p in paths]))
    np.testing.assert_array_equal(ours, official)
    center_crop = _fidrs.Preprocessing(size=336, **{**dict(mode.spec), "fit": "center-crop"})
    assert not np.array_equal(_fidrs.load_images([str(wide)], center_crop)[0], official[-1:])


def test_fd_bound_holds_for_features_moved_within_the_per_image_bound():
    """|FD' − FD| ≤ fd_bound whenever every feature moves by at most ε‖f_i‖: random directions and the worst
    direction for the mean term (along μ_a − μ_b), on sets with n < d (singular covariances, as in the check)."""
    from gpu_check_fidrs import frechet

    rng = np.random.default_rng(0)
    n, d, epsilon = 40, 64, 1e-3
    a = rng.normal(0.5, 1.0, (n, d))
    b = rng.normal(0.0, 1.3, (n, d))
    fd = frechet(a, b)
    towards = (a.mean(0) - b.mean(0)) / np.linalg.norm(a.mean(0) - b.mean(0))
    for trial in range(4):
        moves = []
        for features in (a, b):
            if trial == 0:  # all of it on the mean difference, opposite signs for the two sets
                direction = np.broadcast_to(towards * (1 if features is a else -1), features.shape)
            else:
                direction = rng.normal(size=features.shape)
            direction = direction / np.linalg.norm(direction, axis=1, keepdims=True)
            moves.append(features + direction * epsilon * np.linalg.norm(features, axis=1, keepdims=True))
        moved = frechet(*moves)
        assert abs(moved - fd) <= fd_bound(a, b, epsilon, fd)
        assert abs(moved - fd) <= fd_bound_measured(a, b, *moves, fd)
        if trial == 0:  # the bound is not vacuous: the worst direction reaches a good part of it
            assert abs(moved - fd) >= 0.25 * fd_bound(a, b, epsilon, fd)


# --- the carry folders --------------------------------------------------------------------------------------


def _wheel(folder: Path, name: str, payload: bytes) -> Path:
    """A minimal valid wheel holding package `name` with `DATA = <payload length>` and a data file."""
    path = folder / f"{name}-1.0-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": f"DATA = {len(payload)}\n".encode(),
        f"{name}/blob.bin": payload,
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{k},sha256={_b64(v)},{len(v)}" for k, v in files.items()] + [f"{name}-1.0.dist-info/RECORD,,"]
    files[f"{name}-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
    return path


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_layout_fills_each_folder_and_cuts_only_where_full():
    folders = gpu_carry.layout([("a", 30), ("b", 50), ("big", 250)], capacity=100)
    assert [sum(c["bytes"] for c in f) for f in folders] == [100, 100, 100, 30]
    assert [c["wheel"] for c in folders[0]] == ["a", "b", "big"]
    chunks = [c for f in folders for c in f if c["wheel"] == "big"]
    assert [c["offset"] for c in chunks] == [0, 20, 120, 220] and sum(c["bytes"] for c in chunks) == 250


def test_carried_wheels_reassemble_and_install_one_call_at_a_time(tmp_path, capsys):
    here, machine, wheels = tmp_path / "here", tmp_path / "machine", tmp_path / "wheels"
    for p in (here, machine, wheels):
        p.mkdir()
    rng = np.random.default_rng(0)
    small = _wheel(wheels, "smallpkg", rng.bytes(3000))
    runtime = _wheel(wheels, "bigpkg", rng.bytes(40_000))  # incompressible: the wheel stays ~40 kB
    manifest = gpu_carry.pack(here, [small], runtime, capacity=16_000, python_tag="cp3x")
    folders = manifest["folders"]
    assert len(folders) == -(-(small.stat().st_size + runtime.stat().st_size) // 16_000) >= 3
    site = machine / ".gpu-site"
    for i, folder in enumerate(folders):
        shutil.copytree(here / folder, machine / folder)  # one device call carries one folder
        assert gpu_carry.receive(machine, site, machine / ".gpu-stage", sys.executable) == 0
        done = gpu_carry.complete(machine, site) == 0
        assert done == (i == len(folders) - 1)
        if i == 0:  # the small wheel is whole in the first folder: installed at once
            assert (site / "smallpkg" / "__init__.py").is_file() and not (site / "bigpkg").exists()
    assert "WARNING" not in capsys.readouterr().out
    shutil.rmtree(machine / folders[1])  # as if the machine had been released and only later folders came back
    shutil.rmtree(site)
    assert gpu_carry.receive(machine, site, machine / ".gpu-stage", sys.executable) == 0
    assert f"WARNING: {folders[1]} missing" in capsys.readouterr().out
    for folder in folders:  # the sequence again from call 1
        if not (machine / folder).exists():
            shutil.copytree(here / folder, machine / folder)
    assert gpu_carry.receive(machine, site, machine / ".gpu-stage", sys.executable) == 0
    probe = "import smallpkg, bigpkg; print(smallpkg.DATA, bigpkg.DATA, smallpkg.__file__)"
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], env={"PYTHONPATH": str(site)}, capture_output=True, text=True
    )
    assert out.stdout.split()[:2] == ["3000", "40000"] and out.stdout.split()[2].startswith(str(site)), out.stderr


def test_a_damaged_chunk_or_mixed_carry_runs_are_refused(tmp_path, capsys):
    here, machine, wheels = tmp_path / "here", tmp_path / "machine", tmp_path / "wheels"
    for p in (here, machine, wheels):
        p.mkdir()
    runtime = _wheel(wheels, "bigpkg", np.random.default_rng(1).bytes(20_000))
    manifest = gpu_carry.pack(here, [], runtime, capacity=8_000, python_tag="cp3x")
    shutil.copytree(here / manifest["folders"][0], machine / manifest["folders"][0])
    chunk = next((machine / manifest["folders"][0]).glob("bigpkg-*.whl.*"))
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert gpu_carry.receive(machine, machine / "site", machine / "stage", sys.executable) == 4
    assert "damaged in transfer" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    second = gpu_carry.pack(other, [], _wheel(wheels, "otherpkg", b"x" * 100), capacity=8_000, python_tag="cp3x")
    shutil.copytree(other / second["folders"][0], machine / ".gpu2")
    with pytest.raises(SystemExit, match="different gpu_carry.sh runs"):
        gpu_carry.receive(machine, machine / "site", machine / "stage", sys.executable)
