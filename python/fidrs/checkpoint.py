"""Read PyTorch checkpoints (legacy and zip serialisation, and TorchScript archives) into NumPy arrays, without
torch.

Every pickle record goes through an allow-list unpickler: the legacy header records (magic number,
protocol, sys_info, storage keys) admit no global at all, the state dict only the handful a state dict
needs. So a hostile checkpoint cannot run code. Tensor views are checked against their storage before
they are read, and storage sizes against the file, so a crafted file cannot read memory or allocate
more than it holds. torch's own loader is not an option: torch is not a dependency.

A TorchScript archive (`torch.jit.save`: OpenAI's CLIP releases) is the same zip layout, whose `data.pkl`
pickles the scripted modules as objects of `__torch__.*` classes. Read with `torchscript=True`, each such
class becomes an inert attribute record (no class is looked up, no code of the archive's `code/` is read, let
alone run) and the tensors are named by their attribute paths, as `torch.jit.load(f).state_dict()` names them.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NotRegularFileError, WeightsError
from .regular_files import open_regular

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str) -> None:
        if name not in _STORAGE_DTYPES:
            raise WeightsError(f"unsupported tensor storage type torch.{name}")
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are attached once they have been read (by `loader`, on first use, where given: the
    tensors a caller does not select are never read)."""

    def __init__(self, dtype: np.dtype, numel: int, loader: Callable[[], np.ndarray] | None = None) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None
        self._loader = loader

    def load(self) -> np.ndarray | None:
        if self.data is None and self._loader is not None:
            self.data, self._loader = self._loader(), None
        return self.data


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        data = self.storage.load()
        if data is None:
            raise WeightsError("checkpoint references a tensor storage that is not in the file")
        self._check_bounds(len(data))
        if not self.size:
            return np.array(data[self.offset])
        itemsize = data.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
        )
        return np.array(view)  # own, contiguous copy

    def _check_bounds(self, numel: int) -> None:
        """A view must lie inside its storage: as_strided would otherwise read foreign memory."""
        fields = (self.offset, *self.size, *self.stride)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in fields):
            raise WeightsError(f"tensor view has a negative or non-integer offset, size or stride: {fields}")
        if len(self.size) != len(self.stride):
            raise WeightsError(f"tensor view has {len(self.size)} sizes but {len(self.stride)} strides")
        if 0 in self.size:
            return
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= numel:
            raise WeightsError(f"tensor view reaches element {last} of a storage of {numel}")
        # Overlapping views (stride 0) could blow a few bytes up into gigabytes; state dicts never hold them.
        if int(np.prod(self.size, dtype=object)) > numel:
            raise WeightsError(f"tensor view of {self.size} has more elements than its storage of {numel}")


def _rebuild_tensor(storage, storage_offset, size, stride, *_rest):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *_rest):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


# TorchScript's typed-container helpers (`torch.jit._pickle`): each returns its first argument unchanged.
def _identity(value, *_rest):
    return value


_TORCHSCRIPT_GLOBALS = {
    ("torch.jit._pickle", name): _identity
    for name in ("restore_type_tag", "build_intlist", "build_doublelist", "build_boollist", "build_tensorlist")
}
# No real archive nests modules this deep (CLIP: 6 levels); a crafted one could nest until Python's stack ends.
_MAX_MODULE_DEPTH = 64


class _ScriptObject:
    """An object of a TorchScript class (`__torch__.<module> <name>`) in an archive's data.pkl: its attributes
    (submodules, parameters, buffers, flags) are kept as data; the class itself is never resolved."""

    type_name = "?"

    def __new__(cls, *args):
        if args:
            raise WeightsError(f"TorchScript object {cls.type_name} is built with arguments")
        obj = super().__new__(cls)
        obj.attributes = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise WeightsError(f"TorchScript object {self.type_name} has a state that is not named attributes")
        self.attributes.update(state)


def _script_class(module: str, name: str) -> type:
    if not name.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise WeightsError(f"checkpoint contains a malformed TorchScript class name {module}.{name!r:.100}")
    return type(name, (_ScriptObject,), {"type_name": f"{module}.{name}", "__slots__": ()})


def script_tensors(root: _ScriptObject) -> OrderedDict[str, Any]:
    """Every tensor attribute of a TorchScript module tree, named by its dotted attribute path
    (`visual.conv1.weight`). Other attributes (flags, None, strings) are not tensors and are left out."""
    out: OrderedDict[str, Any] = OrderedDict()
    on_path: set[int] = set()

    def visit(obj: _ScriptObject, prefix: str, depth: int) -> None:
        if depth > _MAX_MODULE_DEPTH or id(obj) in on_path:
            raise WeightsError(f"TorchScript module {prefix.rstrip('.') or 'root'} nests too deep or in a cycle")
        on_path.add(id(obj))
        for key, value in obj.attributes.items():
            if isinstance(value, _TensorRef):
                out[prefix + key] = value
            elif isinstance(value, _ScriptObject):
                visit(value, f"{prefix}{key}.", depth + 1)
        on_path.discard(id(obj))

    visit(root, "", 0)
    return out


class _BoundedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler, not the C one: the C unpickler sizes its memo table by the largest index a
    PUT opcode names, so 100 crafted bytes can make it allocate gigabytes (found by fuzzing). This one keeps
    its memo in a dict. BYTEARRAY8 (protocol 5, never in a checkpoint) allocates its announced length before
    reading; it is refused. Reads go through `_BoundedReader`, so no other opcode can over-allocate either."""

    dispatch = dict(pickle._Unpickler.dispatch)
    del dispatch[pickle.BYTEARRAY8[0]]


class _PlainDataUnpickler(_BoundedUnpickler):
    """For records that hold only ints, strings, tuples, lists and dicts: no global is admitted."""

    def find_class(self, module: str, name: str) -> Any:
        raise WeightsError(f"checkpoint header contains a disallowed object {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("checkpoint header contains a persistent reference")


class _BoundedReader:
    """A file view for the unpickler whose reads never ask for more than the file still holds: a pickle
    opcode may announce gigabytes, and `read(n)` would allocate them before finding the file shorter."""

    def __init__(self, f, size: int) -> None:
        self.f, self.size = f, size

    def _room(self, n: int) -> int:
        left = max(self.size - self.f.tell(), 0)
        return left if n is None or n < 0 else min(n, left)

    def read(self, n: int = -1) -> bytes:
        return self.f.read(self._room(n))

    def readline(self, n: int = -1) -> bytes:
        return self.f.readline(self._room(n))

    def tell(self) -> int:
        return self.f.tell()

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        return self.f.readinto(view[: self._room(len(view))])


def _load_plain(f) -> Any:
    return _PlainDataUnpickler(f).load()


class _RestrictedUnpickler(_BoundedUnpickler):
    def __init__(self, file, storages: dict[str, _Storage], load_storage=None, torchscript: bool = False) -> None:
        super().__init__(file)
        self._storages = storages
        self._load_storage = load_storage
        self._torchscript = torchscript
        self._script_classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        if self._torchscript:
            if module == "__torch__" or module.startswith("__torch__."):
                key = (module, name)
                if key not in self._script_classes:
                    self._script_classes[key] = _script_class(module, name)
                return self._script_classes[key]
            if (module, name) in _TORCHSCRIPT_GLOBALS:
                return _TORCHSCRIPT_GLOBALS[(module, name)]
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(f"checkpoint contains a disallowed object {module}.{name}") from None

    def persistent_load(self, pid: Any) -> _Storage:
        # (tag, storage type, key, location, numel), plus view metadata (None) in the legacy format.
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and pid[5:] in ((), (None,))):
            raise WeightsError(f"unexpected persistent id in checkpoint: {pid!r:.200}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if not isinstance(storage_type, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise WeightsError(f"malformed storage reference in checkpoint: {pid!r:.200}")
        if key not in self._storages:
            loader = None
            if self._load_storage is not None:
                load, dtype = self._load_storage, storage_type.dtype
                loader = lambda: load(key, dtype)  # noqa: E731 - read on first use
            self._storages[key] = _Storage(storage_type.dtype, numel, loader)
        storage = self._storages[key]
        if storage.dtype != storage_type.dtype or storage.numel != numel:
            raise WeightsError(f"storage {key!r:.50} is referenced with two different types or sizes")
        return storage


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        return OrderedDict((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _load_legacy(file: io.BufferedIOBase) -> Any:
    size = os.fstat(file.fileno()).st_size
    f = _BoundedReader(file, size)
    magic = _load_plain(f)
    if magic != LEGACY_MAGIC_NUMBER:
        raise WeightsError("not a PyTorch checkpoint (bad magic number)")
    protocol = _load_plain(f)
    if protocol != 1001:
        raise WeightsError(f"unsupported legacy checkpoint protocol {protocol!r:.50}")
    sys_info = _load_plain(f)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) is not True:
        raise WeightsError("unsupported checkpoint: sys_info is not that of a little-endian machine")
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(f, storages).load()
    keys = _load_plain(f)
    if not isinstance(keys, list):
        raise WeightsError("checkpoint's storage key list is not a list")
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise WeightsError(f"checkpoint lists storage {key!r:.50} that no tensor uses")
        header = f.read(8)
        if len(header) != 8:
            raise WeightsError("checkpoint is truncated (missing tensor data)")
        numel = int.from_bytes(header, "little", signed=True)
        if numel != storage.numel:
            raise WeightsError(f"storage {key!r:.50} holds {numel} elements, its tensors declare {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        if nbytes > size - f.tell():
            raise WeightsError("checkpoint is truncated (short tensor data)")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise WeightsError("checkpoint is truncated (short tensor data)")
        storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return result


_ZIP_LOCAL_HEADER = b"PK\x03\x04"  # what a zip starts with; its directory is at the end
# torch.save stores zip members uncompressed; a deflated copy compresses float weights by well under 16x.
_MAX_ZIP_EXPANSION = 16


def _load_zip(file: io.BufferedIOBase, finish: Callable[[Any], Any], torchscript: bool) -> Any:
    """The unpickled data.pkl of a zip checkpoint, passed to `finish` while the archive is open (storages are read
    when `finish` materialises their tensors)."""
    budget = _MAX_ZIP_EXPANSION * max(os.fstat(file.fileno()).st_size, 1 << 20)
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise WeightsError("zip checkpoint has no data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode().strip()
        order = "<" if byteorder == "little" else ">"

        def load_storage(key: str, dtype: np.dtype) -> np.ndarray:
            nonlocal budget
            info = archive.getinfo(f"{prefix}data/{key}")
            if info.file_size > budget:
                raise WeightsError(f"zip member {info.filename!r} expands to more than the file can hold")
            budget -= info.file_size
            if info.file_size % dtype.itemsize:
                raise WeightsError(f"zip member {info.filename!r} is not a whole number of {dtype} values")
            return np.frombuffer(archive.read(info), dtype=dtype.newbyteorder(order))

        info = archive.getinfo(pickles[0])
        if info.file_size > budget:
            raise WeightsError(f"zip member {info.filename!r} expands to more than the file can hold")
        with archive.open(info) as f:
            data = f.read()
        reader = _BoundedReader(io.BytesIO(data), len(data))
        return finish(_RestrictedUnpickler(reader, {}, load_storage, torchscript).load())


def load_state_dict(
    path: str | Path, *, torchscript: bool = False, select: Callable[[str], bool] | None = None
) -> OrderedDict[str, np.ndarray]:
    """The tensors of a PyTorch checkpoint as NumPy arrays, keyed by name.

    `torchscript`: also read a TorchScript archive (`torch.jit.save`), its tensors named by attribute path.
    `select`: keep only the tensors whose names it accepts; in a zip the others' bytes are never read."""
    path = Path(path)

    def finish(obj: Any) -> OrderedDict[str, np.ndarray]:
        if torchscript and isinstance(obj, _ScriptObject):
            obj = script_tensors(obj)
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            what = "a state dict or a TorchScript module" if torchscript else "a state dict"
            raise WeightsError(f"checkpoint does not hold {what}")
        if select is not None:
            obj = OrderedDict((k, v) for k, v in obj.items() if isinstance(k, str) and select(k))
        return _materialise(obj)

    try:
        with open_regular(path) as f:  # a FIFO or device is refused before any read
            if zipfile.is_zipfile(f):
                return _load_zip(f, finish, torchscript)
            f.seek(0)
            if f.read(4) == _ZIP_LOCAL_HEADER:
                raise WeightsError(
                    "not a readable PyTorch checkpoint (a zip without its directory: truncated or damaged)"
                )
            f.seek(0)
            return finish(_load_legacy(f))
    except NotRegularFileError as e:
        raise WeightsError(str(e)) from None
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - the unpicklers run no code: any failure is a bad file
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e!s:.200})") from None
