"""Reading pytorch-fid checkpoints without torch, and building the ONNX graph from them."""

from __future__ import annotations

import io
import pickle
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import onnx
import pytest
from fidrs.backbones.inception_graph import build_fid_inception
from fidrs.checkpoint import load_state_dict
from fidrs.errors import WeightsError


@pytest.fixture(scope="module")
def state(weights):
    return load_state_dict(weights)


def test_legacy_checkpoint_has_the_real_files_layout(state):
    assert len(state) == 566
    assert state["fc.weight"].shape == (1008, 2048) and state["fc.weight"].dtype == np.float32
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert state["Conv2d_1a_3x3.bn.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state.values())


def _fake_torch_modules():
    """Stand-in `torch` and `torch._utils` modules so pickle can name the globals torch's writer uses."""
    torch_mod, utils_mod = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only used for pickling")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_mod.FloatStorage, torch_mod._utils = FloatStorage, utils_mod
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    return {"torch": torch_mod, "torch._utils": utils_mod}


class _PersistentStorage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _TensorStub:
    def __init__(self, key: str, array: np.ndarray, rebuild) -> None:
        self.key, self.array, self.rebuild = key, array, rebuild

    def __reduce__(self):
        stride = tuple(s // self.array.itemsize for s in self.array.strides)
        storage = _PersistentStorage(self.key, self.array.size)
        return self.rebuild, (storage, 0, self.array.shape, stride, False, OrderedDict())


def _write_zip_checkpoint(path, tensors: dict, monkeypatch) -> None:
    """Write torch's zip serialisation format (archive/data.pkl + archive/data/<key>) without torch."""
    fake = _fake_torch_modules()
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    storage_class = fake["torch"].FloatStorage

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _PersistentStorage):
                return ("storage", storage_class, obj.key, "cpu", obj.numel)
            return None

    rebuild = fake["torch._utils"]._rebuild_tensor_v2
    stubs = OrderedDict((name, _TensorStub(str(i), arr, rebuild)) for i, (name, arr) in enumerate(tensors.items()))
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(stubs)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for stub in stubs.values():
            z.writestr(f"archive/data/{stub.key}", np.ascontiguousarray(stub.array, "<f4").tobytes())


def test_zip_checkpoint_reads_the_same_tensors(state, tmp_path, monkeypatch):
    subset = {k: state[k] for k in ["fc.bias", "fc.weight", "Conv2d_1a_3x3.conv.weight"]}
    path = tmp_path / "zip.pth"
    _write_zip_checkpoint(path, subset, monkeypatch)
    assert zipfile.is_zipfile(path)
    loaded = load_state_dict(path)
    assert list(loaded) == list(subset)
    for k, v in subset.items():
        np.testing.assert_array_equal(loaded[k], v)


def test_unpickler_refuses_arbitrary_globals(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(WeightsError, match="disallowed object"):
        load_state_dict(path)


def test_garbage_and_truncated_files_are_rejected(weights, tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_state_dict(junk)
    truncated = tmp_path / "truncated.pth"
    with open(weights, "rb") as f:
        truncated.write_bytes(f.read()[:5_000_000])
    with pytest.raises(WeightsError, match="truncated"):
        load_state_dict(truncated)


def test_onnx_graph_is_valid_with_the_agreed_interface(state):
    model = build_fid_inception(state)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    assert [i.name for i in graph.input] == ["images"]
    dims = [d.dim_value or d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 299, 299]
    outputs = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in graph.output}
    assert outputs == {"pool3": ["N", 2048], "logits": ["N", 1008], "logits_unbiased": ["N", 1008]}
    ops = {n.op_type for n in graph.node}
    assert {"Conv", "AveragePool", "MaxPool", "GlobalAveragePool", "Gemm"} <= ops
    # FID blocks: every average pool excludes padding.
    for node in graph.node:
        if node.op_type == "AveragePool":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs.get("count_include_pad", 0) == 0


def test_checkpoint_with_missing_tensor_is_rejected(state):
    broken = dict(state)
    del broken["Mixed_6b.branch7x7_2.conv.weight"]
    with pytest.raises(WeightsError, match="Mixed_6b.branch7x7_2.conv.weight"):
        build_fid_inception(broken)
