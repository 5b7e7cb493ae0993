"""DINOv2 checkpoints: the converter on other sizes (depth, width, SwiGLU read from the tensors) against an
independent numpy forward pass, the Hugging Face safetensors layout, structure checks, and weights resolution
(download from a local server, the recorded sha256, pinning)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from math import erf

import fidrs
import numpy as np
import onnxruntime as ort
import pytest
from conftest import SHARED, run_cli, serve_folder, write_images
from fidrs import weights as w
from fidrs.backbones import get as backbone
from fidrs.backbones.vit_graph import Architecture, build_dinov2, expected_shapes, position_embedding

CHECKPOINT = SHARED / "conformance" / "dinov2" / "random_dinov2_vits14.pth"


def random_state(arch: Architecture, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in expected_shapes(arch).items():
        scale = 0.3 if key.endswith(("qkv.weight", "w12.weight")) else 0.05
        value = rng.normal(scale=scale, size=shape)
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            value = 1 + value
        state[key] = value.astype(np.float32)
    return state


def numpy_forward(state: dict[str, np.ndarray], arch: Architecture, images: np.ndarray) -> np.ndarray:
    """DINOv2's forward written out in float64 from the official module definitions."""
    s = {k: v.astype(np.float64) for k, v in state.items()}
    n, d, side = len(images), arch.width, images.shape[-1] // 14
    patches = images.astype(np.float64).reshape(n, 3, side, 14, side, 14).transpose(0, 2, 4, 1, 3, 5)
    x = patches.reshape(n, side * side, 3 * 14 * 14) @ s["patch_embed.proj.weight"].reshape(d, -1).T
    x = x + s["patch_embed.proj.bias"]
    x = np.concatenate([np.broadcast_to(s["cls_token"], (n, 1, d)), x], axis=1)
    x = x + position_embedding(state["pos_embed"], arch.grid, side).astype(np.float64)

    def norm(v, p):
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-6) * s[f"{p}.weight"] + s[f"{p}.bias"]

    def linear(v, p):
        return v @ s[f"{p}.weight"].T + s[f"{p}.bias"]

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    heads = arch.heads
    for i in range(arch.depth):
        p = f"blocks.{i}"
        qkv = linear(norm(x, f"{p}.norm1"), f"{p}.attn.qkv").reshape(n, -1, 3, heads, 64).transpose(2, 0, 3, 1, 4)
        scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) / 8.0
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = (scores / scores.sum(-1, keepdims=True)) @ qkv[2]
        attended = attended.transpose(0, 2, 1, 3).reshape(n, -1, d)
        x = x + s[f"{p}.ls1.gamma"] * linear(attended, f"{p}.attn.proj")
        h = norm(x, f"{p}.norm2")
        if arch.ffn == "mlp":
            h = linear(gelu(linear(h, f"{p}.mlp.fc1")), f"{p}.mlp.fc2")
        else:
            x1, x2 = np.split(linear(h, f"{p}.mlp.w12"), 2, axis=-1)
            h = linear(x1 / (1 + np.exp(-x1)) * x2, f"{p}.mlp.w3")
        x = x + s[f"{p}.ls2.gamma"] * h
    return norm(x, "norm")[:, 0]


def onnx_forward(state, images) -> np.ndarray:
    session = ort.InferenceSession(build_dinov2(state).SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["cls"], {"images": images})[0]


@pytest.mark.parametrize(
    "arch",
    [Architecture(128, 2, "mlp", 37), Architecture(128, 3, "swiglu", 37), Architecture(192, 1, "mlp", 16)],
    ids=["mlp-2-blocks", "swiglu-3-blocks", "mlp-grid-16"],
)
def test_converter_reads_the_architecture_and_matches_a_float64_forward(arch):
    """Depth, width, FFN kind and grid come from the tensors; float32 vs float64 with a few blocks of width ≤ 192:
    relative error per image ≤ 1e-5 (round-off ~√d·u per reduction, u = 6e-8)."""
    state = random_state(arch)
    images = np.random.default_rng(1).normal(size=(2, 3, 224, 224)).astype(np.float32)
    ours, reference = onnx_forward(state, images), numpy_forward(state, arch, images)
    relative = np.linalg.norm(ours - reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert relative.max() <= 1e-5, relative


def _to_hf(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The official → Hugging Face renaming (as transformers' convert_dinov2_to_hf.py does it)."""
    out = {
        "embeddings.cls_token": state["cls_token"],
        "embeddings.mask_token": state["mask_token"],
        "embeddings.position_embeddings": state["pos_embed"],
        "embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
        "layernorm.weight": state["norm.weight"],
        "layernorm.bias": state["norm.bias"],
    }
    i = 0
    while f"blocks.{i}.norm1.weight" in state:
        b, h = f"blocks.{i}", f"encoder.layer.{i}"
        for kind in ("weight", "bias"):
            q, k, v = np.split(state[f"{b}.attn.qkv.{kind}"], 3)
            out[f"{h}.attention.attention.query.{kind}"] = q
            out[f"{h}.attention.attention.key.{kind}"] = k
            out[f"{h}.attention.attention.value.{kind}"] = v
            out[f"{h}.attention.output.dense.{kind}"] = state[f"{b}.attn.proj.{kind}"]
            for norm in ("norm1", "norm2"):
                out[f"{h}.{norm}.{kind}"] = state[f"{b}.{norm}.{kind}"]
            for ours, theirs in (("fc1", "fc1"), ("fc2", "fc2"), ("w12", "weights_in"), ("w3", "weights_out")):
                if f"{b}.mlp.{ours}.{kind}" in state:
                    out[f"{h}.mlp.{theirs}.{kind}"] = state[f"{b}.mlp.{ours}.{kind}"]
        out[f"{h}.layer_scale1.lambda1"] = state[f"{b}.ls1.gamma"]
        out[f"{h}.layer_scale2.lambda1"] = state[f"{b}.ls2.gamma"]
        i += 1
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


@pytest.mark.parametrize("ffn", ["mlp", "swiglu"])
def test_hugging_face_safetensors_give_the_official_state(tmp_path, ffn):
    from safetensors.numpy import save_file

    state = random_state(Architecture(128, 2, ffn, 37))
    path = tmp_path / "model.safetensors"
    save_file(_to_hf(state), str(path))
    loaded = backbone("dinov2-vits14").load_state(path)
    assert loaded.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(loaded[key], state[key])


@pytest.mark.slow  # the shared ViT-S/14 built and run from two files
def test_the_shared_checkpoint_through_safetensors_gives_the_same_features(tmp_path):
    from safetensors.numpy import save_file

    state = backbone("dinov2-vits14").load_state(CHECKPOINT)
    path = tmp_path / "model.safetensors"
    save_file(_to_hf(dict(state)), str(path))
    images = np.random.default_rng(2).normal(size=(2, 3, 224, 224)).astype(np.float32)
    np.testing.assert_array_equal(
        onnx_forward(backbone("dinov2-vits14").load_state(path), images), onnx_forward(state, images)
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("blocks.1.ls2.gamma"), "missing.*blocks.1.ls2.gamma"),
        (lambda s: s.update({"register_tokens": np.zeros((1, 4, 128), np.float32)}), "register-token"),
        (lambda s: s.update({"blocks.0.attn.qkv.weight": np.zeros((128, 128), np.float32)}), "qkv.weight has shape"),
        (lambda s: s.update({"norm.bias": np.zeros(128, np.float16)}), "float16"),
        (lambda s: s["blocks.0.mlp.fc1.bias"].__setitem__(3, np.nan), "NaN"),
    ],
    ids=["missing-key", "registers", "shape", "dtype", "nan"],
)
def test_malformed_state_dicts_are_refused_by_name(edit, message):
    state = random_state(Architecture(128, 2, "mlp", 37))
    edit(state)
    with pytest.raises(fidrs.WeightsError, match=message):
        build_dinov2(state)


def test_a_checkpoint_of_another_width_names_the_right_backbone(tmp_path, monkeypatch):
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(fidrs.WeightsError, match="width 384.*use backbone 'dinov2-vits14'"):
        w.resolve_model("dinov2", str(CHECKPOINT))


# --- weights resolution: the official file has no published hash -------------------------------------------


@pytest.fixture()
def served(tmp_path):
    """127.0.0.1 serving the random ViT-S/14 (a stand-in for the real file) and a truncated copy of it."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(CHECKPOINT, root / "dinov2_vits14_pretrain.pth")
    (root / "foreign.pth").write_bytes(CHECKPOINT.read_bytes()[: 10 << 20])
    with serve_folder(root) as url:
        yield url


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("FIDRS_CACHE", str(path))
    for name in ("FIDRS_WEIGHTS_DINOV2_VITS14", "FIDRS_WEIGHTS_SHA256_DINOV2_VITS14"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_download_is_verified_recorded_and_later_changes_refused(served, cache, monkeypatch):
    vits = backbone("dinov2-vits14")
    monkeypatch.setenv("FIDRS_WEIGHTS_URL_DINOV2_VITS14", f"{served}/dinov2_vits14_pretrain.pth")
    model = w.resolve_model(vits)
    official = cache / "dinov2_vits14_pretrain.pth"
    assert model.checkpoint == official
    assert w.recorded_sha256_path(official).read_text() == model.weights_sha256 == w.sha256_file(CHECKPOINT)
    assert w.resolve_model(vits).onnx_path == model.onnx_path  # the second time: no download, same graph
    data = bytearray(official.read_bytes())
    data[-5000] ^= 0xFF  # a changed tensor byte: same structure, other sha256
    official.write_bytes(bytes(data))
    with pytest.raises(fidrs.WeightsHashMismatchError, match="recorded when this file was first verified"):
        w.resolve_model(vits)


def test_a_download_that_is_not_the_official_structure_is_deleted(served, cache, monkeypatch):
    vits = backbone("dinov2-vits14")
    monkeypatch.setenv("FIDRS_WEIGHTS_URL_DINOV2_VITS14", f"{served}/foreign.pth")
    with pytest.raises(fidrs.WeightsError, match="not the official DINOv2"):
        w.resolve_model(vits)
    assert not any(cache.glob("*.pth*"))  # nothing kept: no file, no .part, no recorded hash


def test_a_download_over_the_expected_size_is_abandoned(served, cache):
    small = dataclasses.replace(
        backbone("dinov2-vits14"), weights=dataclasses.replace(backbone("dinov2-vits14").weights, max_bytes=1 << 20)
    )
    with pytest.raises(fidrs.WeightsUnavailableError, match="over the cap of 1048576"):  # announced length
        w.download_weights(small, f"{served}/dinov2_vits14_pretrain.pth", cache / "x.pth")


def test_offline_names_the_file_and_the_ways_to_give_it(cache, monkeypatch):
    monkeypatch.setenv("FIDRS_WEIGHTS_URL_DINOV2_VITL14", "http://127.0.0.1:9/dinov2_vitl14_pretrain.pth")
    with pytest.raises(fidrs.WeightsUnavailableError) as e:
        w.resolve_model("dinov2")
    message = str(e.value)
    assert "dinov2_vitl14_pretrain.pth" in message and "--weights" in message
    assert "FIDRS_WEIGHTS_DINOV2_VITL14" in message


def test_a_pinned_sha256_is_enforced(cache, monkeypatch):
    with pytest.raises(fidrs.WeightsHashMismatchError, match="pins"):
        w.resolve_model("dinov2-vits14", str(CHECKPOINT), weights_sha256="0" * 64)
    monkeypatch.setenv("FIDRS_WEIGHTS_SHA256_DINOV2_VITS14", "1" * 64)
    with pytest.raises(fidrs.WeightsHashMismatchError, match="FIDRS_WEIGHTS_SHA256_DINOV2_VITS14"):
        w.resolve_model("dinov2-vits14", str(CHECKPOINT))
    with pytest.raises(fidrs.InvalidInputError, match="64 hex digits"):
        w.resolve_model("dinov2-vits14", str(CHECKPOINT), weights_sha256="abc")
    good = w.sha256_file(CHECKPOINT)
    assert w.resolve_model("dinov2-vits14", str(CHECKPOINT), weights_sha256=good.upper()).weights_sha256 == good


def test_a_graph_too_large_for_one_protobuf_goes_to_external_data(tmp_path, monkeypatch):
    """ViT-g/14's 4.5 GB cannot be one protobuf message: the initialisers move to `<graph>.data`. Forced here with
    a small threshold on a 2-block SwiGLU model; the features are bit-identical to the in-memory graph."""
    monkeypatch.setattr(w, "EXTERNAL_DATA_BYTES", 1 << 16)
    monkeypatch.setenv("FIDRS_CACHE", str(tmp_path / "cache"))
    arch = Architecture(128, 2, "swiglu", 37)
    state = random_state(arch)
    from safetensors.numpy import save_file

    path = tmp_path / "g.safetensors"
    save_file(_to_hf(state), str(path))
    giant = dataclasses.replace(backbone("dinov2-vitg14"), check_state=lambda s: None)
    model = w.resolve_model(giant, str(path))
    data = model.onnx_path.with_name(model.onnx_path.name + ".data")
    assert data.stat().st_size > model.onnx_path.stat().st_size  # the weights are in the data file
    images = np.random.default_rng(3).normal(size=(2, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(["cls"], {"images": images})[0], onnx_forward(state, images))
    assert w.resolve_model(giant, str(path)).onnx_path == model.onnx_path  # intact: reused
    with open(data, "r+b") as f:  # one flipped byte in the data file: the graph is rebuilt, not trusted
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert w._intact_graph_sha256(model.onnx_path) is None


def _crafted_safetensors(path):
    """A header promising a 400 GB tensor that the file does not hold."""
    import json
    import struct

    header = json.dumps(
        {"embeddings.cls_token": {"dtype": "F32", "shape": [1, 1, 10**11], "data_offsets": [0, 4 * 10**11]}}
    ).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("empty.safetensors", lambda p: p.write_bytes(b""), "not a readable safetensors file"),
        ("crafted.safetensors", _crafted_safetensors, "not a readable safetensors file"),
        ("huge-header.safetensors", lambda p: p.write_bytes((1 << 62).to_bytes(8, "little") + b"{}"), "not a readable"),
        ("cut.pth", lambda p: p.write_bytes(CHECKPOINT.read_bytes()[: 40 << 20]), "not a readable PyTorch checkpoint"),
        ("fifo.safetensors", lambda p: os.mkfifo(p), "not a regular file"),
        ("loop.safetensors", lambda p: p.symlink_to(p), "weights file not found"),
    ],
)
def test_hostile_dinov2_checkpoints_are_exit_2_naming_the_file_once(tmp_path, name, make, reason):
    images = write_images(tmp_path / "imgs", 3)
    path = tmp_path / name
    make(path)
    out = run_cli("score", str(images), str(images), "--backbone", "dinov2-vits14", "--weights", str(path), timeout=60)
    assert out.returncode == 2, out.stderr
    assert reason in out.stderr and out.stderr.count(str(path)) == 1, out.stderr
    assert "Traceback" not in out.stderr
