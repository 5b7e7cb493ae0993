"""pytorch-fid's resize inside the network graph (issue 28, host feeding): for a GPU run, the host only decodes
and uploads uint8 pixels at their native size (30 KB for a 100² image instead of 1 MB of float32 at 299²), and
the graph resizes them as fidrs' host path does.

`with_torch_bilinear_input(model)` turns a backbone graph whose input is N×3×S×S float32 into one whose input is
N×H×W×3 uint8 (any H, W; one size per batch) computing, in order, exactly the `pytorch-fid` mode of
`fidrs.backbones` (`Resize::TorchBilinear`, unit before-resize, `src/preprocess`): `v / 255`, torch's
`F.interpolate(mode="bilinear", align_corners=False)` (half-pixel centres, no antialias) to S×S, `(x − 0.5)/0.5`
(= pytorch-fid's `2x − 1`). The interpolation is written as explicit ops rather than an ONNX `Resize`, whose
coordinate arithmetic (ONNX Runtime divides by out/in where torch multiplies by in/out, and weighs the four
neighbours with products of the two axes' weights) differs from torch's by float round-off (measured on the CPU
provider: up to 1.4e-5 for 100² inputs, 2e-4 for 1024×768, on most pixels): here every tap
index and weight is computed from the input's shape with torch's own f32 operations, and each pass is
`a·v₀ + b·v₁` as separate IEEE multiplies and adds, so the network input is the host path's bit for bit on any
provider that rounds IEEE f32 operations (tested on the CPU provider).

Not yet used by the feature pass (host resizing stays the default until a GPU run shows the gain): it needs
batches grouped by image size, uint8 NHWC uploads, and a session per wrapped graph.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT = "images_u8"
_P = "torch_bilinear_input/"  # prefix of every name the wrapper adds


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), _P + name)


def _axis_taps(nodes: list, length: str, axis: str) -> tuple[str, str, str, str]:
    """Nodes computing torch's two taps per output index for one axis (`taps::torch_axis`, in the same f32
    operations) from the input length `length` (int64 scalar): (i0, i1) int64 and (a, b) f32, one per output
    index. (Where the length equals the output size this gives a = 1, b = 0: a·v + 0·v' = v, as the host's copy.)"""
    p = f"{_P}{axis}_"

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [p + out], **attrs))
        return p + out

    n = node("Cast", [length], "len_f", to=TensorProto.FLOAT)
    scale = node("Div", [n, _P + "out_size_f"], "scale")  # in/out in f32
    # scale·(dst + 0.5) − 0.5, negatives to 0 (area_pixel_compute_source_index, linear, align_corners=False)
    shifted = node("Sub", [node("Mul", [scale, _P + "centres"], "scaled"), _P + "half"], "shifted")
    real = node("Max", [shifted, _P + "zero"], "real")
    last = node("Sub", [n, _P + "one"], "last")
    i0 = node("Min", [node("Floor", [real], "floor"), last], "i0_f")
    l1 = node("Clip", [node("Sub", [real, i0], "frac"), _P + "zero", _P + "one"], "b")
    a = node("Sub", [_P + "one", l1], "a")
    i1 = node("Min", [node("Add", [i0, _P + "one"], "next"), last], "i1_f")
    return node("Cast", [i0], "i0", to=TensorProto.INT64), node("Cast", [i1], "i1", to=TensorProto.INT64), a, l1


def with_torch_bilinear_input(
    model: onnx.ModelProto,
    mean: float = 0.5,
    std: float = 0.5,
    input_name: str | None = None,
) -> onnx.ModelProto:
    """`model` (one float32 N×3×S×S input) with a uint8 N×H×W×3 input `images_u8` resized inside the graph:
    `((bilinear(v/255) − mean)/std)` as the `pytorch-fid` mode computes it on the host (module docstring)."""
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    target = next((i for i in inputs if i.name == input_name), None) if input_name else None
    if target is None:
        if input_name is not None or len(inputs) != 1:
            raise ValueError(f"expected one graph input{f' named {input_name!r}' if input_name else ''}")
        target = inputs[0]
    dims = target.type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 3 or dims[2].dim_value != dims[3].dim_value or dims[2].dim_value < 1:
        raise ValueError(f"the input {target.name!r} is not N×3×S×S: {[d.dim_value or d.dim_param for d in dims]}")
    size = dims[2].dim_value

    initializers = [
        _const("out_size_f", np.float32(size)),
        _const("centres", np.arange(size, dtype=np.float32) + np.float32(0.5)),  # dst + 0.5, exact
        _const("half", np.float32(0.5)),
        _const("zero", np.float32(0.0)),
        _const("one", np.float32(1.0)),
        _const("u8_max", np.float32(255.0)),
        _const("mean", np.float32(mean)),
        _const("std", np.float32(std)),
        _const("h_index", np.array([1], np.int64)),
        _const("w_index", np.array([2], np.int64)),
        _const("column", np.array([size, 1], np.int64)),
    ]
    nodes: list = []

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [_P + out], **attrs))
        return _P + out

    shape = node("Shape", [INPUT], "shape")
    height = node("Squeeze", [node("Gather", [shape, _P + "h_index"], "h")], "height")
    width = node("Squeeze", [node("Gather", [shape, _P + "w_index"], "w")], "width")
    y0, y1, ya, yb = _axis_taps(nodes, height, "y")
    x0, x1, xa, xb = _axis_taps(nodes, width, "x")

    # v/255 (torchvision's ToTensor), planar N×3×H×W
    values = node("Div", [node("Cast", [INPUT], "float", to=TensorProto.FLOAT), _P + "u8_max"], "unit")
    planar = node("Transpose", [values], "planar", perm=[0, 3, 1, 2])
    # width: a·v[x0] + b·v[x1] → N×3×H×S
    left = node("Mul", [node("Gather", [planar, x0], "left_v", axis=3), xa], "left")
    right = node("Mul", [node("Gather", [planar, x1], "right_v", axis=3), xb], "right")
    across = node("Add", [left, right], "across")
    # height: a·row[y0] + b·row[y1] → N×3×S×S (the weights as a column, broadcast along the width)
    ya_col, yb_col = node("Reshape", [ya, _P + "column"], "ya_col"), node("Reshape", [yb, _P + "column"], "yb_col")
    top = node("Mul", [node("Gather", [across, y0], "top_v", axis=2), ya_col], "top")
    bottom = node("Mul", [node("Gather", [across, y1], "bottom_v", axis=2), yb_col], "bottom")
    resized = node("Add", [top, bottom], "resized")
    nodes.append(helper.make_node("Div", [node("Sub", [resized, _P + "mean"], "centred"), _P + "std"], [target.name]))

    new_input = helper.make_tensor_value_info(INPUT, TensorProto.UINT8, [dims[0].dim_param or "N", "H", "W", 3])
    wrapped = helper.make_graph(
        nodes + list(graph.node),
        graph.name,
        [new_input] + [i for i in graph.input if i.name != target.name],
        list(graph.output),
        initializer=initializers + list(graph.initializer),
        value_info=list(graph.value_info),
    )
    out = helper.make_model(wrapped, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out
