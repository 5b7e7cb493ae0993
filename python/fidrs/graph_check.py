"""Static checks of an ONNX graph before ONNX Runtime is given it: a crafted graph (`--model x.onnx`, or a tampered
cached graph) is refused by name instead of hanging, allocating without bound, running custom code or returning
one row for a batch.

A graph is accepted only when
* it imports the default ONNX domain alone, at a supported opset, and has no local functions, training info or
  sparse initialisers;
* every node is a default-domain operator of the allow-set (what fidrs' own builders emit), with no subgraph
  attribute: so no `Loop`/`Scan`/`If`, no `Random*`, no custom-domain op;
* its nodes are in topological order, each value defined once;
* its one input is float32 `images` [N, 3, S, S] (N symbolic, S the backbone's input size), and its outputs
  include every output the backbone reads as float32 [N, dim] (other outputs must be float32 [N, k] too);
* its initialisers have known types and sane dims, hold exactly the bytes their dims need, and any external data
  is a regular file in the graph's own folder, long enough for the declared bytes;
* ONNX shape inference (strict, with data propagation, from the input alone: declared output shapes and
  value_info are not trusted) gives every value a shape made of numbers and N (once at most), the outputs come
  out [N, dim] as declared, and from those shapes:
  - each image's outputs depend on that image alone: values computed from the images keep the batch axis, and
    no node works along it (a batch mean broadcast back to N rows, a softmax over the batch, a gather of the
    first image for every row, a reshape across images are refused);
  - the live tensors never exceed a bound per image, the arithmetic per image is bounded, and the work that
    does not scale with the batch (constants that ONNX Runtime folds while it creates the session, where no run
    deadline can stop it) is small.

The check runs on the graph *file* as loaded (`onnx.load(path, load_external_data=False)`): ONNX Runtime's
optimiser later fuses nodes into `com.microsoft` operators in memory, which is why those never need to be in a
file. Every refusal is a `GraphError` (exit 2) whose message names the file and the reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from math import prod
from pathlib import Path

from .display import display
from .errors import GraphError, InvalidInputError
from .identity import memoised

# --- The allow-set: the operators of the graphs fidrs builds (tests/unit/test_hostile_graphs.py derives each builder's
# operators from graphs it builds and fails when one is missing here, or listed here and emitted by no builder).
# A new builder adds its own set and joins KNOWN_OPS.
INCEPTION_OPS = frozenset(
    {"Add", "AveragePool", "Concat", "Conv", "Flatten", "Gemm", "GlobalAveragePool", "MaxPool", "Relu"}
)  # fidrs.model.build_fid_inception
VIT_OPS = frozenset(
    {
        "Add",
        "Concat",
        "Conv",
        "Div",
        "Erf",  # exact GELU
        "Expand",
        "Gather",
        "LayerNormalization",
        "MatMul",
        "Mul",
        "Reshape",
        "Shape",
        "Sigmoid",  # SwiGLU's SiLU; CLIP's QuickGELU x·sigmoid(1.702x)
        "Slice",
        "Softmax",
        "Split",  # SwiGLU
        "Transpose",
    }
)  # fidrs.backbones.vit_graph (DINOv2 and CLIP)
# CLIP's addition to the ViT builder: the L2-normalised embedding (CMMD) is x / ReduceL2(x).
CLIP_OPS = frozenset({"ReduceL2"})
KNOWN_OPS = INCEPTION_OPS | VIT_OPS | CLIP_OPS

# Why some operators are never accepted (the message says so; any other unknown operator is "not one of
# fidrs' graphs' operators").
_CONTROL_FLOW = {"Loop", "Scan", "If", "SequenceMap"}
_RANDOM = {
    "Bernoulli",
    "Dropout",
    "Multinomial",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
}

# Opset 17 is what every fidrs builder emits (LayerNormalization exists from 17); 19 is the newest the oldest
# ONNX Runtime fidrs accepts (onnxruntime 1.16, pyproject) implements. The opset fixes what each operator means
# (and so what the checks below assume of it); the IR version is the file format: from 8 (opset 17's) up to the
# installed onnx's own (`onnx.IR_VERSION`: `helper.make_model` writes it, as a plugin's converter does; a newer
# one is a format this onnx cannot read reliably). ONNX Runtime refuses an IR it cannot load, by name too.
SUPPORTED_OPSETS = range(17, 20)
MIN_IR_VERSION = 8

# Initialiser element types fidrs' builders write (weights; shapes and indices), with their sizes in bytes.
INITIALIZER_TYPES: Mapping[int, tuple[str, int]] = {1: ("float32", 4), 7: ("int64", 8)}  # TensorProto.FLOAT, INT64

# Bounds from shapes (elements and arithmetic counted for ONE image; N = 1). The largest fidrs graphs: CLIP
# ViT-L/14 at 336 holds ~1.2e7 live elements per image (attention scores 16×577×577 = 5.3e6, twice, plus the
# residual stream); DINOv2 ViT-g/14 at 224 does ~6e11 floating-point operations per image (40 blocks of
# 2·257·1536·(4608 + 1536 + 8192 + 4096) + 4·257²·1536). Each bound is about 10× (peak) or 3× (work) that.
MAX_LIVE_ELEMENTS_PER_IMAGE = 1 << 27  # 512 MiB of float32 alive at once, per image
MAX_FLOPS_PER_IMAGE = 2e12
# Work on values without the batch axis (shapes, and nodes computing from constants only): fidrs' graphs do a few
# hundred operations there; ONNX Runtime folds constant nodes while creating the session, where no run deadline
# applies (measured: 200 chained 1024² MatMuls on constants, 4.3e11 operations, stall the session 18 s).
MAX_FIXED_FLOPS = 1e9

# protobuf cannot parse a message of 2 GiB or more: no graph file is larger (above 1 GiB of weights, fidrs writes
# them to external data).
PROTOBUF_LIMIT = (1 << 31) - 1

_BATCH = object()  # the batch axis in a resolved shape


@dataclass(frozen=True)
class GraphSummary:
    """What the checks learnt about an accepted graph."""

    ops: frozenset[str]
    batch_symbol: str  # the name of the batch dimension (N)
    flops_per_image: float  # estimated arithmetic per image (the run deadline scales with it)
    fixed_flops: float  # arithmetic that does not scale with the batch
    peak_elements_per_image: int  # the most elements alive at once, per image, in node order
    initializer_bytes: int


def ops_of(model) -> set[str]:
    """Every operator a model uses, in its main graph, its subgraphs and its local functions; an operator of a
    domain other than the default one is written `domain::op`."""
    found: set[str] = set()

    def visit(nodes) -> None:
        for node in nodes:
            domain = node.domain if node.domain not in ("", "ai.onnx") else ""
            found.add(f"{domain}::{node.op_type}" if domain else node.op_type)
            for attr in node.attribute:
                if attr.HasField("g"):
                    visit(attr.g.node)
                for g in attr.graphs:
                    visit(g.node)

    visit(model.graph.node)
    for function in model.functions:
        visit(function.node)
    return found


def largest_weights_bytes() -> int:
    """The size cap of the largest checkpoint of any backbone: no fidrs graph holds more initialiser bytes (its
    tensors are the checkpoint's, folded or cut down, as float32)."""
    from . import backbones

    return max(backbones.get(name).weights.max_bytes for name in backbones.names(aliases=False))


def check_backbone_graph(model, path: str | os.PathLike, backbone) -> GraphSummary:
    """`check_graph` with everything it needs taken from a `Backbone`: its input size, the outputs it reads and
    their sizes, the operators its graph uses beyond fidrs' own (`Backbone.operators`, a plugin's); the rest of
    the allow-set and the initialiser cap are those of every fidrs graph (a user's checkpoint may be deeper than
    the official one, so the cap is the largest backbone's)."""
    return check_graph(
        model,
        path,
        allowed_ops=KNOWN_OPS | frozenset(backbone.operators),
        input_size=backbone.input_size,
        outputs={o.name: o.dim for o in backbone.outputs},
        max_initializer_bytes=largest_weights_bytes(),
    )


def check_graph(
    model,
    path: str | os.PathLike,
    *,
    allowed_ops: Iterable[str],
    input_size: int,
    outputs: Mapping[str, int],
    max_initializer_bytes: int,
    max_live_elements_per_image: int = MAX_LIVE_ELEMENTS_PER_IMAGE,
    max_flops_per_image: float = MAX_FLOPS_PER_IMAGE,
    max_fixed_flops: float = MAX_FIXED_FLOPS,
) -> GraphSummary:
    """Refuse (`GraphError` naming `path`) a graph that is not one fidrs could have built; see the module's
    docstring for every rule. `model` is the file's `onnx.ModelProto` without its external data loaded; `path`
    is the file (its folder is where external data must be); `outputs` maps each output the caller reads to its
    size."""
    where = display(path)

    def refuse(reason: str) -> GraphError:
        return GraphError(f"{where}: {reason}")

    try:
        _check_model(model, refuse)
        _check_nodes(model.graph, frozenset(allowed_ops), refuse)
        batch = _check_input(model.graph, input_size, refuse)
        _check_outputs(model.graph, outputs, batch, refuse)
        total = _check_initializers(model.graph, Path(path), max_initializer_bytes, refuse)
        shapes = _inferred_shapes(model, batch, refuse)
        _check_inferred_outputs(model.graph, shapes, refuse)
        _check_images_stay_apart(model.graph, shapes, refuse)
        flops, fixed = _arithmetic(model.graph, shapes)
        peak = _peak_live_elements(model.graph, shapes)
        if peak > max_live_elements_per_image:
            raise refuse(
                f"its tensors hold up to {peak:.3g} elements per image at once, over the limit of "
                f"{max_live_elements_per_image:.3g} (fidrs' largest network holds about 1.2e7)"
            )
        if flops > max_flops_per_image:
            raise refuse(
                f"about {flops:.3g} floating-point operations per image, over the limit of {max_flops_per_image:.3g} "
                "(fidrs' largest network does about 6e11)"
            )
        if fixed > max_fixed_flops:
            raise refuse(
                f"about {fixed:.3g} floating-point operations on constants or shapes (work ONNX Runtime would do "
                f"while loading it, with no deadline), over the limit of {max_fixed_flops:.3g}"
            )
        return GraphSummary(
            ops=frozenset(ops_of(model)),
            batch_symbol=batch,
            flops_per_image=flops,
            fixed_flops=fixed,
            peak_elements_per_image=peak,
            initializer_bytes=total,
        )
    except GraphError:
        raise
    except (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        # A graph so malformed that a check itself trips over it: refused too, never a traceback (fuzzed in
        # tests/unit/test_hostile_graphs.py; the type is kept in the message, it would be a bug here to fix).
        raise refuse(f"cannot be checked ({type(e).__name__}: {_shown(str(e), 200)})") from None


def load_and_check(path: str | os.PathLike, backbone, max_file_bytes: int | None = None):
    """Read the graph file at `path` through the hardened reader (a FIFO is refused, the size is capped), parse
    it without its external data and `check_backbone_graph` it. Returns `(model, summary)`."""
    import onnx

    from .regular_files import read_regular

    cap = PROTOBUF_LIMIT if max_file_bytes is None else max_file_bytes
    try:
        data = read_regular(path, cap)
    except InvalidInputError:
        raise  # a FIFO, a directory, over the size cap: already says so, naming the file
    except OSError as e:
        raise GraphError(f"{display(path)}: cannot read the ONNX graph ({e.strerror or e})") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX graph
        raise GraphError(f"{display(path)}: not a readable ONNX graph ({type(e).__name__}: {e})") from None
    return model, check_backbone_graph(model, path, backbone)


def _memo_key(path: str, backbone) -> tuple[str, tuple[str, str]]:
    """Everything of the backbone the check depends on, and the files."""
    interface = (backbone.input_size, tuple((o.name, o.dim) for o in backbone.outputs), sorted(backbone.operators))
    return f"graph_check {interface!r}", (path, path + ".data")


def checked(path: str | os.PathLike, backbone) -> GraphSummary:
    """`load_and_check(path, backbone)`'s summary, once per identity of the graph file and its conventional data
    file (`<graph>.data`) per backbone in this process: a changed file is checked again."""
    path = os.fspath(path)
    return memoised(*_memo_key(path, backbone), lambda: load_and_check(path, backbone)[1])


def check_parsed(model, path: str | os.PathLike, backbone) -> GraphSummary:
    """`check_backbone_graph` of a graph already read from `path` (an exported graph, whose metadata is read
    from the same parse), recorded so that `checked(path, backbone)` does not read and check it again."""
    path = os.fspath(path)
    summary = check_backbone_graph(model, path, backbone)
    return memoised(*_memo_key(path, backbone), lambda: summary)


# --- the model and its nodes ---------------------------------------------------------------------------------


def _check_model(model, refuse) -> None:
    import onnx

    if not MIN_IR_VERSION <= model.ir_version <= onnx.IR_VERSION:
        raise refuse(f"ONNX IR version {model.ir_version}; fidrs accepts {MIN_IR_VERSION} to {onnx.IR_VERSION}")
    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    others = sorted({o.domain for o in model.opset_import if o.domain not in ("", "ai.onnx")})
    if others:
        raise refuse(f"imports the operator domain(s) {others}; fidrs' graphs use the default ONNX domain only")
    if len(default) != 1 or default[0] not in SUPPORTED_OPSETS:
        found = default[0] if len(default) == 1 else default
        raise refuse(
            f"ONNX opset {found}; fidrs accepts opsets {SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1}"
        )
    if len(model.functions):
        raise refuse(f"defines local functions ({_shown(', '.join(f.name for f in model.functions))})")
    if len(model.training_info):
        raise refuse("carries training info (an algorithm ONNX Runtime could run)")
    if len(model.graph.sparse_initializer):
        raise refuse("has sparse initialisers, which fidrs' graphs never use")


def _shown(text: str | bytes, limit: int = 80) -> str:
    """A name from the file as it may appear in a message: cut short, control characters escaped (protobuf gives
    a string that is not valid UTF-8 as bytes)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    return text[:limit].encode("unicode_escape").decode("ascii")


def _check_nodes(graph, allowed: frozenset[str], refuse) -> None:
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    for index, node in enumerate(graph.node):
        label = f"node {index} ({_shown(node.op_type)}{' ' + repr(node.name[:80]) if node.name else ''})"
        if node.domain not in ("", "ai.onnx"):
            raise refuse(
                f"{label} is an operator of domain {node.domain!r} (custom code); fidrs' graphs use the default "
                "ONNX domain only"
            )
        if any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            raise refuse(f"{label} has a subgraph (control flow), which fidrs' graphs never have")
        if node.op_type not in allowed:
            if node.op_type in _CONTROL_FLOW:
                why = "control flow, which fidrs' graphs never have (a loop can run for ever)"
            elif node.op_type in _RANDOM:
                why = "random, and features must be a function of the image alone"
            else:
                why = "not an operator of fidrs' graphs"
            raise refuse(f"{label}: {why} (allowed: {', '.join(sorted(allowed))})")
        for name in node.input:
            if name and name not in defined:
                raise refuse(f"{label} reads {name!r} before any node or input defines it")
        for name in node.output:
            if not name:
                continue
            if name in defined:
                raise refuse(f"{label} defines {name!r} a second time")
            defined.add(name)


def _dims(value) -> list:
    """The declared shape of a graph input/output: ints, symbol names, or None where unknown; None if no shape."""
    t = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if t is None or not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _elem_type(value) -> int | None:
    return value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None


def _check_input(graph, size: int, refuse) -> str:
    names = [i.name for i in graph.input]
    if names != ["images"]:
        raise refuse(f"its inputs are {names[:5]}; a fidrs graph has exactly one, 'images'")
    image = graph.input[0]
    dims = _dims(image)
    if _elem_type(image) != 1:
        raise refuse(f"input 'images' is of type {_type_name(_elem_type(image))}, not float32")
    if dims is None or len(dims) != 4 or dims[1:] != [3, size, size] or not isinstance(dims[0], str):
        shown = "unknown" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
        raise refuse(f"input 'images' has shape {shown}, this backbone needs [N, 3, {size}, {size}] (N symbolic)")
    return dims[0]


def _check_outputs(graph, needed: Mapping[str, int], batch: str, refuse) -> None:
    declared = {}
    for out in graph.output:
        if out.name in declared:
            raise refuse(f"declares output {out.name!r} twice")
        declared[out.name] = out
    missing = [name for name in needed if name not in declared]
    if missing:
        raise refuse(f"has no output {missing[0]!r} (its outputs: {sorted(declared)[:8]})")
    for name, out in declared.items():
        dims, kind = _dims(out), _elem_type(out)
        if kind != 1:
            raise refuse(f"output {name!r} is of type {_type_name(kind)}, not float32")
        want = needed.get(name)
        ok = dims is not None and len(dims) == 2 and dims[0] == batch and isinstance(dims[1], int) and dims[1] > 0
        if not ok or (want is not None and dims[1] != want):
            shown = "unknown" if dims is None else "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
            expected = f"[{batch}, {want}]" if want is not None else f"[{batch}, k]"
            raise refuse(f"output {name!r} has shape {shown}, expected {expected}: one row per image")


def _type_name(kind: int | None) -> str:
    if kind is None:
        return "none (not a tensor)"
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(kind).lower()
    except ValueError:
        return f"#{kind}"


# --- initialisers ----------------------------------------------------------------------------------------------


def _check_initializers(graph, path: Path, cap: int, refuse) -> int:
    from onnx import TensorProto

    folder = path.absolute().parent
    names: set[str] = set()
    total = 0
    for t in graph.initializer:
        label = f"initialiser {t.name!r}"
        if t.name in names:
            raise refuse(f"{label} is defined twice")
        if t.name == "images":
            raise refuse(f"{label} has the name of the input")
        names.add(t.name)
        if t.data_type not in INITIALIZER_TYPES:
            raise refuse(f"{label} is of type {_type_name(t.data_type)}; fidrs' graphs hold float32 and int64 only")
        if any(d < 0 for d in t.dims) or len(t.dims) > 8:
            raise refuse(f"{label} has dims {list(t.dims)[:10]}")
        kind, itemsize = INITIALIZER_TYPES[t.data_type]
        count = prod(t.dims)
        expected = count * itemsize
        total += expected
        if total > cap:
            raise refuse(f"its initialisers hold over {cap} bytes, more than the largest fidrs network ({label})")
        if t.HasField("segment"):
            raise refuse(f"{label} is a segment of a tensor, which fidrs' graphs never use")
        if t.data_location == TensorProto.EXTERNAL:
            if t.raw_data or len(t.float_data) or len(t.int64_data):
                raise refuse(f"{label} has both external and inline data")
            _check_external(t, label, expected, folder, path, refuse)
            continue
        typed = len(t.float_data) if kind == "float32" else len(t.int64_data)
        raw = len(t.raw_data)
        other = len(t.int32_data) + len(t.double_data) + len(t.uint64_data) + len(t.string_data)
        if other or len(t.external_data) or (raw and typed):
            raise refuse(f"{label} stores its values in fields its type does not use")
        if raw != expected and typed != count:
            have = f"{raw} bytes" if raw else f"{typed} values"
            raise refuse(f"{label} of dims {list(t.dims)} needs {expected} bytes ({count} {kind}), has {have}")
    return total


_EXTERNAL_KEYS = {"location", "offset", "length", "checksum"}


def _check_external(t, label: str, expected: int, folder: Path, path: Path, refuse) -> None:
    entries = {}
    for entry in t.external_data:
        if entry.key not in _EXTERNAL_KEYS or entry.key in entries:
            raise refuse(f"{label}: external data key {entry.key!r} is unknown or repeated")
        entries[entry.key] = entry.value
    location = entries.get("location", "")
    # One plain file name: no folder part (so no `..`, no absolute path, no ONNX Runtime in-memory marker
    # `*/_ORT_MEM_ADDR_/*`), as `fidrs models export` and the cache write it: `<graph>.data` beside the graph.
    if (
        not location
        or location in (".", "..")
        or any(c in location for c in "/\\:\0*")
        or os.path.basename(location) != location
    ):
        raise refuse(f"{label}: external data location {location[:200]!r} is not a file name in the graph's own folder")
    numbers = {}
    for key in ("offset", "length"):
        value = entries.get(key)
        if value is None:
            continue
        if not value.isdigit() or len(value) > 19:
            raise refuse(f"{label}: external data {key} {value[:40]!r} is not a byte count")
        numbers[key] = int(value)
    offset = numbers.get("offset", 0)
    if "length" in numbers and numbers["length"] != expected:
        raise refuse(f"{label}: external data length {numbers['length']}, its dims need {expected} bytes")
    data = folder / location
    if data.name == path.name:
        raise refuse(f"{label}: external data location is the graph file itself")
    try:
        real_folder = os.path.realpath(folder)
        real = os.path.realpath(data)
        if os.path.dirname(real) != real_folder:
            raise refuse(f"{label}: external data {location!r} leads outside the graph's folder (to {real})")
        st = os.stat(real)
    except OSError as e:
        raise refuse(f"{label}: external data file {display(data)} cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse(f"{label}: external data {display(data)} is not a regular file")
    if offset + expected > st.st_size:
        raise refuse(
            f"{label}: external data {display(data)} has {st.st_size} bytes, the tensor needs bytes {offset} to "
            f"{offset + expected}"
        )


# --- shapes, memory and arithmetic -------------------------------------------------------------------------


def _skeleton(model):
    """The model without its weights and without its claims, for shape inference: large or external initialisers
    become typed graph inputs (their values are never needed for shapes), small int64 ones (shapes, indices) stay
    as data; the outputs keep their type but not their declared shape, and the graph's value_info is left out, so
    every shape is derived from the input (a declared [N, d] cannot cover a node that makes one row)."""
    from onnx import TensorProto, helper

    graph = model.graph
    kept, typed = [], []
    for t in graph.initializer:
        if t.data_type == TensorProto.INT64 and t.data_location != TensorProto.EXTERNAL and prod(t.dims) <= 64:
            kept.append(t)
        else:
            typed.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    outputs = [helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type, None) for o in graph.output]
    skeleton = helper.make_graph(graph.node, graph.name or "graph", [*graph.input, *typed], outputs, kept)
    out = helper.make_model(skeleton, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    return out


def _inferred_shapes(model, batch: str, refuse) -> dict[str, list]:
    """Every value's shape, each dim a number or _BATCH."""
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(_skeleton(model), check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # noqa: BLE001 - InferenceError, ValidationError: the graph's shapes do not check
        raise refuse(f"its shapes do not check ({str(e).strip()[:300]})") from None
    shapes: dict[str, list] = {t.name: list(t.dims) for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        dims = _dims(value)
        if value.name in shapes or dims is None:
            continue
        resolved = [d if isinstance(d, int) else _BATCH if d == batch else None for d in dims]
        if value.name in outputs and (len(dims) != 2 or resolved[0] is not _BATCH):
            shown = "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
            raise refuse(f"output {value.name!r} comes out {shown}, not one row per image")
        if None in resolved:
            d = dims[resolved.index(None)]
            raise refuse(
                f"value {value.name!r} has a dimension {d or '?'} that is neither a number nor the batch {batch}"
            )
        if resolved.count(_BATCH) > 1:
            raise refuse(f"value {value.name!r} has the batch dimension twice (it mixes the images of a batch)")
        shapes[value.name] = resolved
    for node in model.graph.node:
        for name in node.output:
            if name and name not in shapes:
                raise refuse(f"the shape of {name!r} ({node.op_type}) cannot be inferred, so its size is unbounded")
    return shapes


def _check_inferred_outputs(graph, shapes: Mapping[str, list], refuse) -> None:
    """What the nodes compute for each output is what it declares ([N, d], checked by `_check_outputs`)."""
    for out in graph.output:
        dims, declared = shapes.get(out.name), _dims(out)
        if dims is None or len(dims) != 2 or dims[0] is not _BATCH or dims[1] != declared[1]:
            shown = "?" if dims is None else "[" + ", ".join("N" if d is _BATCH else str(d) for d in dims) + "]"
            raise refuse(f"output {out.name!r} comes out {shown}, declared [{declared[0]}, {declared[1]}]")


# Operators that work along one axis (attribute, default) or along a set of axes.
_ALONG_AXIS = {"Softmax": -1, "Gather": 0, "Split": 0, "Concat": None}
_SPATIAL = {"Conv", "AveragePool", "MaxPool", "GlobalAveragePool"}  # the batch must be axis 0 of the input


def _check_images_stay_apart(graph, shapes: Mapping[str, list], refuse) -> None:
    """Each image's outputs depend on that image alone, whatever else is in the batch. Every value computed from
    the images' values (Shape reads only their dims) keeps the batch axis (a batch mean broadcast back to N rows
    loses it on the way), and no node works along it: softmax, normalisation, reduction, gather, slice, split or
    concatenation over the batch axis, pooling or convolution with the batch elsewhere than axis 0, or a reshape
    that moves data across it."""
    constants = {t.name: t for t in graph.initializer}
    from_images = {i.name for i in graph.input}
    for index, node in enumerate(graph.node):
        if node.op_type == "Shape" or not any(name in from_images for name in node.input):
            continue
        label = f"node {index} ({_shown(node.op_type)})"
        # The input the node works along: the first one, or for Concat any of those computed from the images.
        first = next(n for n in node.input if n in from_images) if node.op_type == "Concat" else node.input[0]
        data = shapes.get(first) if first in from_images else None
        at = data.index(_BATCH) if data is not None and _BATCH in data else None
        if at is not None:
            along = _axes_worked_along(node, len(data), constants)
            if along is None or at in along:
                raise refuse(f"{label} works along the batch axis: it mixes the images of a batch")
            if node.op_type in _SPATIAL and at != 0:
                raise refuse(f"{label} has the batch at axis {at}, not 0: it mixes the images of a batch")
            if node.op_type == "Reshape":
                out = shapes[node.output[0]]
                if _BATCH not in out or prod(data[:at]) != prod(out[: out.index(_BATCH)]):
                    raise refuse(f"{label} moves data across the batch axis: it mixes the images of a batch")
        for name in node.output:
            if not name:
                continue
            if _BATCH not in shapes[name]:
                raise refuse(
                    f"value {name!r} ({_shown(node.op_type)}) is computed from the images but has no batch axis: "
                    "each image's features would depend on the rest of the batch"
                )
            from_images.add(name)


def _axes_worked_along(node, rank: int, constants) -> set[int] | None:
    """The axes of its first input that `node` reduces, normalises, selects or joins along (empty: none; None:
    they cannot be told)."""
    attrs = {a.name: a for a in node.attribute}

    def normalised(axes) -> set[int]:
        return {a + rank if a < 0 else a for a in axes}

    def constant_axes(position: int) -> list[int] | None:
        if len(node.input) <= position or not node.input[position]:
            return []
        from onnx import TensorProto, numpy_helper

        t = constants.get(node.input[position])
        if t is None or t.data_location == TensorProto.EXTERNAL:
            return None

        return [int(a) for a in numpy_helper.to_array(t).reshape(-1)]

    kind = node.op_type
    if kind in _ALONG_AXIS:
        if "axis" in attrs:
            return normalised([attrs["axis"].i])
        default = _ALONG_AXIS[kind]
        return None if default is None else normalised([default])
    if kind == "LayerNormalization":  # normalises axis .. last
        start = normalised([attrs["axis"].i if "axis" in attrs else -1]).pop()
        return set(range(start, rank))
    if kind.startswith("Reduce"):
        axes = list(attrs["axes"].ints) if "axes" in attrs else constant_axes(1)
        if axes is None:
            return None
        return normalised(axes) if axes else set(range(rank))  # no axes: all of them
    if kind == "Slice":
        axes = constant_axes(3)
        if axes is None:
            return None
        if axes:
            return normalised(axes)
        starts = constant_axes(1)  # no axes: the first len(starts) axes
        return None if starts is None else set(range(len(starts)))
    return set()


def _elements(dims: list) -> int:
    return prod(1 if d is _BATCH else d for d in dims)


def _arithmetic(graph, shapes: Mapping[str, list]) -> tuple[float, float]:
    """(per image, not scaling with the batch) floating-point operations: 2·MACs for Conv/MatMul/Gemm, elements
    read plus written for every other operator (Shape: written only). A node counts per image when one of its
    outputs has the batch axis."""
    per_image = fixed = 0.0
    for node in graph.node:
        outs = [shapes[n] for n in node.output if n]
        ins = [shapes.get(n, []) for n in node.input if n]
        out_elements = sum(_elements(d) for d in outs)
        if node.op_type == "Conv" and len(ins) >= 2 and len(ins[1]) >= 3:
            cost = 2.0 * out_elements * _elements(ins[1][1:])  # C_in / group × kernel per output element
        elif node.op_type in ("MatMul", "Gemm") and len(ins) >= 2 and ins[0]:
            a = ins[0]
            transposed = node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute)
            k = a[0] if transposed and len(a) == 2 else a[-1]
            cost = 2.0 * out_elements * (1 if k is _BATCH else k)
        elif node.op_type == "Shape":
            cost = float(out_elements)  # reads the input's dims, not its values
        else:
            cost = float(out_elements + sum(_elements(d) for d in ins))
        if any(_BATCH in d for d in outs):
            per_image += cost
        else:
            fixed += cost
    return per_image, fixed


def _peak_live_elements(graph, shapes: Mapping[str, list]) -> int:
    """The most elements alive at once per image when the nodes run in file order, each value freed after its
    last reader (initialisers are counted by bytes, not here)."""
    weights = {t.name for t in graph.initializer}
    last_use: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            last_use[name] = index
    keep = {o.name for o in graph.output}
    live = {i.name: _elements(shapes.get(i.name, [])) for i in graph.input}
    peak = sum(live.values())
    for index, node in enumerate(graph.node):
        for name in node.output:
            if name and name not in weights:
                live[name] = _elements(shapes[name])
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if n not in keep and last_use.get(n, -1) <= index]:
            del live[name]
    return peak
