"""ONNX building blocks for the crafted graphs of the hostile-graph tests (tests/unit/test_hostile_graphs.py on a
4-d toy backbone, tests/plumbing/test_crafted_graphs_end_to_end.py on the tiny test backbone): one definition each."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tensor(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def value(name: str, dims, kind=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, kind, list(dims))


def node(op: str, inputs, outputs, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, list(inputs), list(outputs), **attrs)


def endless_loop(source: str, output: str, dim: int) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    """A Loop with no trip count whose condition stays true, `output` = `source` (N × dim) + 1 + 1 + … for ever,
    and the initialiser of its condition (`cond`)."""
    body = helper.make_graph(
        [node("Identity", ["cond_in"], ["cond_out"]), node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [value("i", [], TensorProto.INT64), value("cond_in", [], TensorProto.BOOL), value("v_in", ["N", dim])],
        [value("cond_out", [], TensorProto.BOOL), value("v_out", ["N", dim])],
        [tensor("one", np.float32(1))],
    )
    return node("Loop", ["", "cond", source], [output], body=body), tensor("cond", np.bool_(True))
