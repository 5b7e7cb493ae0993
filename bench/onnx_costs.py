"""What an ONNX graph costs per image: floating-point operations of its reductions (Conv, MatMul, Gemm), the
longest chain of reductions any value passes through, and the longest reduction. The GPU check uses the
FLOPs for the ratio to the device's fp32 ceiling and the chain and reduction lengths for its fp32 error bound.

Shapes come from ONNX shape inference on a copy of the graph whose large initialisers are replaced by inputs of
the same shape (no weight bytes are copied), with the batch dimension fixed to 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

_REDUCTIONS = ("Conv", "MatMul", "Gemm")
_SMALL = 4096  # initialisers up to this many elements (shapes, indices, scalars) keep their values


@dataclass(frozen=True)
class GraphCosts:
    flops: float  # per image: 2 × multiply-adds of every Conv, MatMul and Gemm
    depth: int  # reductions on the longest path from the input to an output
    longest_reduction: int  # K of the longest dot product (Conv: C_in/groups · kh · kw; MatMul, Gemm: inner dim)


def _light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    kept, as_inputs = [], []
    for tensor in graph.initializer:
        if int(np.prod(tensor.dims)) <= _SMALL and not tensor.external_data:
            kept.append(tensor)
        else:
            as_inputs.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    inputs = []
    for value in graph.input:
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in value.type.tensor_type.shape.dim]
        inputs.append(helper.make_tensor_value_info(value.name, value.type.tensor_type.elem_type, shape))
    light = helper.make_graph(list(graph.node), graph.name, inputs + as_inputs, list(graph.output), kept)
    copy = helper.make_model(light, opset_imports=list(model.opset_import))
    copy.ir_version = model.ir_version
    # data_prop: shapes computed in the graph (Shape → Slice → Concat → Expand, the class token) are propagated.
    return onnx.shape_inference.infer_shapes(copy, strict_mode=True, data_prop=True)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value for d in dims)
    for tensor in model.graph.initializer:
        shapes[tensor.name] = tuple(tensor.dims)
    return shapes


def _reduction(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> tuple[float, int]:
    """(multiply-adds, K) of one reduction node at batch 1."""
    out = shapes[node.output[0]]
    if node.op_type == "Conv":
        weight = shapes[node.input[1]]
        k = int(np.prod(weight[1:]))  # C_in/groups · kh · kw
        return float(np.prod(out)) * k, k
    a = shapes[node.input[0]]
    trans_a = any(attr.name == "transA" and attr.i for attr in node.attribute)
    k = a[-2] if (node.op_type == "Gemm" and trans_a) else a[-1]
    return float(np.prod(out)) * k, int(k)


def graph_costs(model: onnx.ModelProto) -> GraphCosts:
    inferred = _light_copy(model)
    shapes = _shapes(inferred)
    multiply_adds, longest = 0.0, 0
    depth: dict[str, int] = {}
    for node in inferred.graph.node:  # ONNX nodes are in topological order
        here = max((depth.get(name, 0) for name in node.input), default=0)
        if node.op_type in _REDUCTIONS:
            if any(not shapes.get(name) or 0 in shapes[name] for name in (node.input[0], node.output[0])):
                raise ValueError(f"shape inference left {node.op_type} {node.name or node.output[0]} unshaped")
            macs, k = _reduction(node, shapes)
            multiply_adds += macs
            longest = max(longest, k)
            here += 1
        for name in node.output:
            depth[name] = here
    chain = max(depth.get(o.name, 0) for o in inferred.graph.output)
    return GraphCosts(flops=2 * multiply_adds, depth=chain, longest_reduction=longest)
