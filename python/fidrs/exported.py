"""ONNX graphs exported for use elsewhere (`fidrs models export NAME -o x.onnx`) and used back (`--model x.onnx`,
`model=`): a fidrs graph carries its backbone and the sha256 of the checkpoint it was built from as ONNX metadata,
so statistics computed from it record the same weights hash as from the checkpoint, and a graph of another
backbone or other weights is refused. What the graph *is* is not taken from its metadata: its identity is
computed from its content (`identity.graph_sha256`), which the feature cache and statistics record, so a graph
whose tensors were changed never passes for the honest one. A graph file is read through the hardened reader (a
FIFO is refused, the size is capped) and parsed as data, and before any of its `fidrs.*` metadata is trusted it
must pass `graph_check` as a graph of the backbone it names (no loops, custom domains, foreign operators,
escaping external data, wrong interface or unbounded sizes): ONNX Runtime runs no code from it."""

from __future__ import annotations

import os
from pathlib import Path

from . import graph_check
from .display import display
from .errors import InvalidInputError, WeightsError
from .files import atomic_write_bytes, check_output_apart
from .identity import external_data_files, graph_sha256, memoised
from .regular_files import read_regular
from .weights import ResolvedModel

KEY_BACKBONE = "fidrs.backbone"
KEY_WEIGHTS = "fidrs.weights_sha256"
KEY_CONVERTER = "fidrs.converter_sha256"  # for information: the code that built the graph
_REQUIRED = (KEY_BACKBONE, KEY_WEIGHTS)


def _max_graph_bytes() -> int:
    """No graph is larger than the largest checkpoint's tensors inline (above 1 GiB they go to a data file), nor
    than protobuf can parse."""
    return min(graph_check.PROTOBUF_LIMIT, graph_check.largest_weights_bytes() + (64 << 20))


def export_model(model: ResolvedModel, output: str | os.PathLike) -> list[Path]:
    """Write `model`'s graph to `output` with fidrs' metadata (and its external data, if any, to
    `output.data`), atomically. Returns the files written."""
    import onnx

    output = Path(output)
    data_output = output.with_name(output.name + ".data")
    sources = [model.checkpoint, model.onnx_path, _data_file(model.onnx_path)]
    for path in (output, data_output):
        check_output_apart(path, sources)  # not over the checkpoint or the cached graph it is copied from
    proto = onnx.load(str(model.onnx_path), load_external_data=False)
    kept = [p for p in proto.metadata_props if not p.key.startswith("fidrs.")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in (
        (KEY_BACKBONE, model.backbone.name),
        (KEY_WEIGHTS, model.weights_sha256),
        (KEY_CONVERTER, model.backbone.converter_sha256),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    written = []
    source_data = _data_file(model.onnx_path)
    if source_data.exists():
        data_path = data_output
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = data_path.name
        atomic_write_bytes(data_path, source_data.read_bytes())
        written.append(data_path)
    atomic_write_bytes(output, proto.SerializeToString())
    written.insert(0, output)
    return written


def _data_file(graph: Path) -> Path:
    return graph.with_name(graph.name + ".data")


def exported_backbone(path: str | os.PathLike) -> str:
    """The backbone an exported graph was built for."""
    return _read(path)[0][KEY_BACKBONE]


def load_exported(path: str | os.PathLike, backbone, weights_sha256: str | None = None) -> ResolvedModel:
    """The exported graph at `path` as a resolved model of `backbone` (refused if it is another backbone's or not
    the pinned weights)."""
    meta, identity = _read(path)
    where = display(path)
    if meta[KEY_BACKBONE] != backbone.name:
        raise WeightsError(f"{where}: a graph of backbone {meta[KEY_BACKBONE]!r}, not {backbone.name!r}")
    sha = meta[KEY_WEIGHTS]
    if weights_sha256 is not None and sha != weights_sha256.strip().lower():
        raise WeightsError(f"{where}: built from weights with sha256 {sha}, but weights_sha256 pins {weights_sha256}")
    return ResolvedModel(backbone, Path(path), sha, Path(path), identity)


def _read(path: str | os.PathLike) -> tuple[dict[str, str], str]:
    """(fidrs' metadata, the graph's identity), once per file identity of the graph and its external data."""
    path = os.fspath(path)
    try:
        os.stat(path)
    except OSError as e:
        raise WeightsError(f"{display(path)}: cannot read the ONNX graph ({e.strerror or e})") from None
    data = Path(path).with_name(Path(path).name + ".data")
    return memoised("exported", (path, data), lambda: _parse(path))


def _parse(path: str) -> tuple[dict[str, str], str]:
    import onnx

    try:
        data = read_regular(path, _max_graph_bytes())
    except InvalidInputError:
        raise  # a FIFO, a directory, over the size cap: already says so, naming the file
    except OSError as e:
        raise WeightsError(f"{display(path)}: cannot read the ONNX graph ({e.strerror or e})") from None
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: not an ONNX graph
        raise WeightsError(f"{display(path)}: not a readable ONNX graph ({type(e).__name__}: {e})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise WeightsError(
            f"{display(path)}: an ONNX graph without fidrs' metadata ({', '.join(missing)}); only graphs written "
            "by `fidrs models export` can be used, since fidrs must know the weights they hold"
        )
    # The backbone named only chooses which interface the graph is checked against; nothing else of the
    # metadata is used until the graph passed as one of that backbone's.
    from . import backbones

    try:
        backbone = backbones.get(meta[KEY_BACKBONE])
    except InvalidInputError:
        raise WeightsError(
            f"{display(path)}: a graph of backbone {display(meta[KEY_BACKBONE])!r}, which is not registered "
            f"(known: {', '.join(backbones.names(aliases=False))})"
        ) from None
    graph_check.check_parsed(proto, path, backbone)
    return meta, graph_sha256(proto, _external_data(path, proto))


def _external_data(path: str, proto) -> list[Path]:
    """The external-data files of a graph: regular files beside it (ONNX Runtime refuses others too)."""
    folder = Path(path).resolve().parent
    files = []
    for location in external_data_files(proto):
        target = (folder / location).resolve()
        if target.parent != folder or not target.is_file():
            raise WeightsError(f"{display(path)}: its external data {location!r} is not a file beside the graph")
        files.append(target)
    return files
