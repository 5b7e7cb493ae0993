"""Read PyTorch checkpoints (legacy and zip serialisation) into NumPy arrays, without torch.

Every pickle record goes through an allow-list unpickler: the legacy header records (magic number,
protocol, sys_info, storage keys) admit no global at all, the state dict only the handful a state dict
needs. So a hostile checkpoint cannot run code. Tensor views are checked against their storage before
they are read, and storage sizes against the file, so a crafted file cannot read memory or allocate
more than it holds. torch's own loader is not an option: torch is not a dependency.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsError

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
    """A storage whose bytes are attached once they have been read."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        data = self.storage.data
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
    def __init__(self, file, storages: dict[str, _Storage], load_storage=None) -> None:
        super().__init__(file)
        self._storages = storages
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
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
            storage = _Storage(storage_type.dtype, numel)
            if self._load_storage is not None:
                storage.data = self._load_storage(key, storage.dtype)
            self._storages[key] = storage
        return self._storages[key]


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


# torch.save stores zip members uncompressed; a deflated copy compresses float weights by well under 16x.
_MAX_ZIP_EXPANSION = 16


def _load_zip(path: Path) -> Any:
    budget = _MAX_ZIP_EXPANSION * max(os.path.getsize(path), 1 << 20)
    with zipfile.ZipFile(path) as archive:
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
        return _RestrictedUnpickler(_BoundedReader(io.BytesIO(data), len(data)), {}, load_storage).load()


def load_state_dict(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """All tensors of a PyTorch checkpoint as NumPy arrays, keyed by name."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            with open(path, "rb") as f:
                obj = _load_legacy(f)
        obj = _materialise(obj)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - the unpicklers run no code: any failure is a bad file
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e!s:.200})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: checkpoint does not hold a state dict")
    return obj
