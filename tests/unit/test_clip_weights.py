"""CLIP checkpoints: every published format read torch-free into the same tensors (and so bit-identical
features), the converter on other sizes against an independent float64 forward, the Hugging Face config checks,
the manifests, and hostile files refused by name."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import zipfile

import fidrs
import numpy as np
import onnxruntime as ort
import pytest
from clip_support import (
    B32_ARCHIVE,
    L14_SAFETENSORS,
    Call,
    Global,
    ScriptModule,
    numpy_clip_forward,
    write_hf_folder,
    write_state_dict,
    write_torch_zip,
    write_torchscript,
)
from conftest import DATA, run_cli, serve_folder, write_images
from fidrs import weights as w
from fidrs.backbones import get as backbone
from fidrs.backbones import manifest
from fidrs.backbones.clip import build_clip
from fidrs.backbones.clip_weights import ClipArchitecture, architecture_of, expected_shapes
from fidrs.checkpoint import load_state_dict
from fidrs.errors import WeightsError, WeightsHashMismatchError


def random_state(arch: ClipArchitecture, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in expected_shapes(arch).items():
        scale = 0.3 if key.endswith("in_proj_weight") else 0.05
        value = rng.normal(scale=scale, size=shape)
        if key.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight")):
            value = 1 + value
        state[key] = value.astype(np.float32)
    return state


def onnx_outputs(state, images, outputs=("embedding", "embedding_l2")):
    model = build_clip(state, outputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(outputs), {"images": images})


@pytest.mark.parametrize(
    "arch",
    [ClipArchitecture(128, 2, 16, 64, 32), ClipArchitecture(192, 1, 8, 48, 64), ClipArchitecture(64, 3, 14, 56, 16)],
    ids=["w128-l2-p16-r64", "w192-l1-p8-r48", "w64-l3-p14-r56"],
)
def test_converter_reads_the_architecture_and_matches_a_float64_forward(arch):
    """Width, depth, patch, resolution and embedding size come from the tensors; float32 ONNX vs a float64
    numpy forward of clip/model.py: per image relative L2 error ≤ 1e-5 (round-off ~√d·u per reduction, u = 6e-8,
    d ≤ 768, over a few blocks). The L2-normalised output is the embedding over its norm (same bound)."""
    state = random_state(arch)
    assert architecture_of(state) == arch
    images = np.random.default_rng(1).normal(size=(3, 3, arch.image_size, arch.image_size)).astype(np.float32)
    embedding, normalised = onnx_outputs(state, images)
    reference = numpy_clip_forward(state, images)
    relative = np.linalg.norm(embedding - reference, axis=1) / np.linalg.norm(reference, axis=1)
    assert relative.max() <= 1e-5, relative
    unit = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    assert np.abs(normalised - unit).max() <= 1e-5 and np.allclose(np.linalg.norm(normalised, axis=1), 1, atol=1e-6)


@pytest.fixture(scope="module")
def b32_state():
    return backbone("clip").load_state(B32_ARCHIVE)


def test_the_openai_archive_is_read_as_clip_load_reads_it(b32_state):
    """The TorchScript archive: only the image tower, fp16 weights promoted to fp32 exactly, depth from the keys."""
    raw = load_state_dict(B32_ARCHIVE, torchscript=True)
    assert raw["visual.conv1.weight"].dtype == np.float16 and raw["visual.ln_pre.weight"].dtype == np.float32
    assert "token_embedding.weight" in raw and raw["input_resolution"].dtype == np.int64  # the text tower is there
    assert sorted(b32_state) == sorted(k for k in raw if k.startswith("visual."))
    for key, value in b32_state.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, raw[key].astype(np.float32))
    assert architecture_of(b32_state) == ClipArchitecture(768, 2, 32, 224, 512)


def _formats(tmp_path, state_with_text: dict, vision: dict) -> dict:
    """The same weights in every format fidrs reads, converted here without torch."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state_with_text.items()}, str(tmp_path / "oc.safetensors"))
    return {
        "torchscript": write_torchscript(tmp_path / "ViT-test.pt", state_with_text),
        "state dict (.pt)": write_state_dict(tmp_path / "plain.pt", state_with_text),
        "open_clip safetensors": tmp_path / "oc.safetensors",
        "HF model.safetensors": write_hf_folder(tmp_path / "hf-st", vision),
        "HF pytorch_model.bin": write_hf_folder(tmp_path / "hf-bin", vision, fmt="bin"),
    }


@pytest.mark.slow  # the full-width ViT-B/32 (2 blocks) built and run from three files: ~12 s
def test_every_format_gives_bit_identical_b32_features(tmp_path, b32_state):
    """The shared archive, and its tensors rewritten as a TorchScript archive, a plain state dict (fp16 kept), an
    open_clip safetensors and both Hugging Face files: the same tensors, the same graph, the same features."""
    raw = load_state_dict(B32_ARCHIVE, torchscript=True)
    files = sorted((DATA / "training" / "apple_red_1").iterdir())[:2]
    reference = fidrs.features([str(f) for f in files], backbone="clip", weights=str(B32_ARCHIVE), cache=False)
    graph = build_clip(b32_state).SerializeToString()
    for name, path in _formats(tmp_path, raw, b32_state).items():
        state = backbone("clip").load_state(path)
        assert state.keys() == b32_state.keys(), name
        assert all(np.array_equal(state[k], b32_state[k]) and state[k].dtype == np.float32 for k in state), name
        assert build_clip(state).SerializeToString() == graph, name
        ours = fidrs.features([str(f) for f in files], backbone="clip", weights=str(path), cache=False)
        np.testing.assert_array_equal(ours, reference, err_msg=name)


@pytest.mark.slow  # five 108 MB files read and five graphs built
def test_every_format_gives_the_same_l14_graph(tmp_path):
    """The shared Hugging Face folder and its tensors as OpenAI-named files: the same tensors and ONNX graph (so
    the same features, bit for bit; the features themselves are checked in test_clip.py)."""
    state = backbone("clip-vitl14-336").load_state(L14_SAFETENSORS)
    assert architecture_of(state) == ClipArchitecture(1024, 2, 14, 336, 768)
    graph = build_clip(state).SerializeToString()
    for name, path in _formats(tmp_path, state, state).items():
        loaded = backbone("clip-vitl14-336").load_state(path)
        assert loaded.keys() == state.keys(), name
        assert all(np.array_equal(loaded[k], state[k]) for k in state), name
        assert build_clip(loaded).SerializeToString() == graph, name


@pytest.fixture()
def small_state():
    return random_state(ClipArchitecture(128, 2, 16, 64, 32))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_act": "gelu"}, "hidden_act is 'gelu', OpenAI's CLIP needs 'quick_gelu'"),
        ({"layer_norm_eps": 1e-6}, "layer_norm_eps"),
        ({"num_attention_heads": 4}, "num_attention_heads is 4"),
        ({"num_hidden_layers": 3}, "num_hidden_layers is 3, the tensors need 2"),
        ({"image_size": 224}, "image_size is 224, the tensors need 64"),
        ({"projection_dim": 512}, "projection_dim is 512"),
        ({"patch_size": True}, "patch_size is True"),
    ],
)
def test_a_hugging_face_config_that_disagrees_is_refused_naming_it(tmp_path, small_state, overrides, message):
    path = write_hf_folder(tmp_path / "hf", small_state, **overrides)
    with pytest.raises(WeightsError, match=re.escape(message)) as e:
        backbone("clip").load_state(path)
    assert str(tmp_path / "hf" / "config.json") in str(e.value)


def test_the_upstream_config_defaults_are_transformers(tmp_path, small_state):
    """A sparse vision_config takes transformers' CLIPVisionConfig defaults: quick_gelu, eps 1e-5 (accepted),
    224 px and patch 32 (here wrong for a 64-px, patch-16 tower: refused)."""
    path = write_hf_folder(tmp_path / "hf", small_state)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert "hidden_act" not in config["vision_config"] and "layer_norm_eps" not in config["vision_config"]
    assert backbone("clip").load_state(path).keys() == small_state.keys()
    for key in ("patch_size", "image_size"):
        del config["vision_config"][key]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="image_size is 224, the tensors need 64"):
        backbone("clip").load_state(path)
    (tmp_path / "hf" / "config.json").unlink()
    with pytest.raises(WeightsError, match="config.json is missing"):
        backbone("clip").load_state(path)


def test_a_clip_vision_config_is_read_too(tmp_path, small_state):
    """`CLIPVisionModelWithProjection.save_pretrained` writes a CLIPVisionConfig (model_type clip_vision_model)
    at the top level; a config of another model is refused."""
    path = write_hf_folder(tmp_path / "hf", small_state)
    config_path = tmp_path / "hf" / "config.json"
    vision = json.loads(config_path.read_text())["vision_config"]
    config_path.write_text(json.dumps({**vision, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}))
    assert backbone("clip").load_state(path).keys() == small_state.keys()
    config_path.write_text(json.dumps({"model_type": "siglip_vision_model"}))
    with pytest.raises(WeightsError, match="'siglip_vision_model' is not a CLIP config"):
        backbone("clip").load_state(path)
    config_path.write_text("[1, NaN]")
    with pytest.raises(WeightsError, match="not a JSON config"):
        backbone("clip").load_state(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("visual.ln_pre.bias"), "missing ['visual.ln_pre.bias']"),
        (lambda s: s.update({"visual.extra": np.zeros(3, np.float32)}), "unexpected ['visual.extra']"),
        (lambda s: s.update({"visual.proj": np.zeros((64, 32), np.float32)}), "visual.proj has shape (64, 32)"),
        (
            lambda s: s.update({"visual.transformer.resblocks.0.mlp.c_fc.bias": np.zeros(7, np.float32)}),
            "resblocks.0.mlp.c_fc.bias has shape (7,), expected (512,)",
        ),
        (lambda s: s.update({"visual.positional_embedding": np.zeros((18, 128), np.float32)}), "not 1 + a square"),
        (lambda s: s.update({"visual.class_embedding": np.zeros(100, np.float32)}), "not a multiple of the head"),
        (lambda s: s.pop("visual.class_embedding"), "ResNet CLIP"),
        (lambda s: s.update({"visual.ln_post.bias": np.full(128, np.nan, np.float32)}), "NaN"),
    ],
)
def test_malformed_state_dicts_are_refused_by_name(tmp_path, small_state, edit, message):
    edit(small_state)
    path = write_state_dict(tmp_path / "bad.pt", small_state)
    with pytest.raises(WeightsError, match=re.escape(message)) as e:
        backbone("clip").load_state(path)
    assert str(path) in str(e.value)


def test_a_user_file_of_another_embedding_size_or_resolution_is_refused(small_state):
    with pytest.raises(WeightsError, match="backbone 'clip-vitb32' needs embedding 512 and input 224"):
        backbone("clip").check_state(small_state)
    with pytest.raises(WeightsError, match="the official file has width 768, 12 blocks"):
        backbone("clip").check_official(backbone("clip").load_state(B32_ARCHIVE))


def test_manifests_carry_the_url_hash_licence_and_modes():
    """OpenAI's URLs carry the file's sha256 in their path (clip/clip.py checks it): the manifest's sha256 is that
    string, whole, so the download check (`startswith`) verifies all of it."""
    for name, size, feature, mode in (
        ("clip-vitb32", 224, "embedding", "clean-fid"),
        ("clip-vitl14-336", 336, "embedding_l2", "cmmd"),
    ):
        b = backbone(name)
        assert re.fullmatch(r"[0-9a-f]{64}", b.weights.sha256)
        assert b.weights.url.split("/")[-2] == b.weights.sha256 and b.weights.url.endswith(b.weights.filename)
        assert b.weights.licence.startswith("MIT") and "Radford" in b.weights.citation
        assert b.input_size == size and b.feature_output == feature and b.default_mode == mode
        assert b.logits_output is None and {o.name for o in b.outputs} == {"embedding", "embedding_l2"}
        a = manifest.manifest(name)["architecture"]
        vision_bytes = 4 * sum(
            int(np.prod(s))
            for s in expected_shapes(
                ClipArchitecture(a["width"], a["depth"], a["patch"], size, a["embed_dim"])
            ).values()
        )
        assert b.weights.max_bytes > vision_bytes  # the cap admits at least the fp32 image tower
    assert backbone("clip") is backbone("clip-vitb32")
    assert backbone("clip").mode(None).build((255, 255, 255)).size == 224


def test_a_download_is_verified_against_the_sha256_in_its_url(tmp_path):
    """The official URL's sha256 is checked on the downloaded bytes: another file (here the random archive) is
    deleted; the same backbone expecting that file's sha256 keeps it."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(B32_ARCHIVE, root / "ViT-B-32.pt")
    official = backbone("clip")
    destination = tmp_path / "cache" / "ViT-B-32.pt"
    with serve_folder(root) as url:
        with pytest.raises(WeightsHashMismatchError, match=official.weights.sha256):
            w.download_weights(official, f"{url}/ViT-B-32.pt", destination)
        assert not destination.parent.exists() or list(destination.parent.iterdir()) == []
        actual = w.sha256_file(B32_ARCHIVE)
        stand_in = dataclasses.replace(official, weights=dataclasses.replace(official.weights, sha256=actual))
        assert w.sha256_file(w.download_weights(stand_in, f"{url}/ViT-B-32.pt", destination)) == actual


# --- hostile files ----------------------------------------------------------------------------------------------


def _archive_with(tmp_path, root, name="crafted.pt"):
    return write_torch_zip(tmp_path / name, root, prefix="crafted")


def test_torchscript_reader_refuses_crafted_objects(tmp_path):
    """What a crafted data.pkl could try: a real global, arguments to a __torch__ class, a non-dict state, a
    module cycle or a huge nesting. Each is refused by name; nothing is called."""
    system = Call(Global("posix", "system"), ("touch pwned",))
    cases = {
        "disallowed object posix.system": {"x": system},
        "disallowed object builtins.eval": ScriptModule("__torch__.m.M", {"e": Global("builtins", "eval")}),
        "disallowed object torch.jit._pickle.build_module": Global("torch.jit._pickle", "build_module"),
    }
    for message, root in cases.items():
        with pytest.raises(WeightsError, match=re.escape(message)):
            load_state_dict(_archive_with(tmp_path, root), torchscript=True)
    assert not (tmp_path / "pwned").exists()
    # NEWOBJ with arguments / BUILD of a list, written as raw opcodes.
    newobj_args = b"\x80\x02c__torch__.m\nM\n(K\x01t\x81."
    build_list = b"\x80\x02c__torch__.m\nM\n)\x81]b."
    for data, message in ((newobj_args, "built with arguments"), (build_list, "not named attributes")):
        path = tmp_path / "raw.pt"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("raw/data.pkl", data)
        with pytest.raises(WeightsError, match=message):
            load_state_dict(path, torchscript=True)
    # A module whose attribute is itself (memo reference): BINPUT 0 after NEWOBJ, BINGET 0 inside its state.
    cycle = b"\x80\x02c__torch__.m\nM\n)\x81q\x00}(X\x04\x00\x00\x00selfh\x00ub."
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("raw/data.pkl", cycle)
    with pytest.raises(WeightsError, match="cycle"):
        load_state_dict(path, torchscript=True)
    # Without torchscript=True a TorchScript archive is not a state dict.
    with pytest.raises(WeightsError, match="disallowed object __torch__.clip.model.CLIP"):
        load_state_dict(B32_ARCHIVE)


def _lying_safetensors(path):
    """A header promising a 400 GB tensor that the file does not hold."""
    import struct

    header = json.dumps(
        {"visual.proj": {"dtype": "F32", "shape": [10**5, 10**6], "data_offsets": [0, 4 * 10**11]}}
    ).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def _hostile_archive(path):
    """The shared archive with data.pkl's first global (the CLIP module) replaced by a call of os.system."""
    with zipfile.ZipFile(B32_ARCHIVE) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data.pkl"):
                data = data.replace(b"c__torch__.clip.model\nCLIP\n", b"cposix\nsystem\n(S'touch pwned'\ntR", 1)
            dst.writestr(info, data)


def _wrong_shape(path):
    state = backbone("clip").load_state(B32_ARCHIVE)
    state["visual.transformer.resblocks.1.attn.in_proj_weight"] = np.zeros((2304, 700), np.float32)
    write_state_dict(path, state)


def _gelu_config(path):
    write_hf_folder(path.parent / "hf", backbone("clip").load_state(B32_ARCHIVE), hidden_act="gelu")
    os.replace(path.parent / "hf" / "model.safetensors", path)
    os.replace(path.parent / "hf" / "config.json", path.parent / "config.json")


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("crafted.pt", _hostile_archive, "disallowed object posix.system"),
        ("lying.safetensors", _lying_safetensors, "not a readable safetensors file"),
        ("shape.pt", _wrong_shape, "in_proj_weight has shape (2304, 700)"),
        (
            "cut.pt",
            lambda p: p.write_bytes(B32_ARCHIVE.read_bytes()[: 20 << 20]),
            "not a readable PyTorch checkpoint (a zip without its directory",
        ),
        ("fifo.pt", lambda p: os.mkfifo(p), "not a regular file"),
        ("model.safetensors", _gelu_config, "hidden_act is 'gelu'"),
        ("empty.safetensors", lambda p: p.write_bytes(b""), "not a readable safetensors file"),
    ],
)
def test_hostile_clip_files_are_exit_2_naming_the_file_once(tmp_path, name, make, reason):
    images = write_images(tmp_path / "imgs", 3)
    path = tmp_path / name
    make(path)
    # A cache of its own: a graph cached from the same weights would (rightly) not read the file again.
    env = {"FIDRS_CACHE": str(tmp_path / "cache")}
    out = run_cli("score", str(images), str(images), "--backbone", "clip", "--weights", str(path), env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    named = str(tmp_path / "config.json") if reason.startswith("hidden_act") else str(path)
    assert reason in out.stderr and out.stderr.count(named) == 1, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "pwned").exists()
