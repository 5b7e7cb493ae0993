"""Read pickles of plain data and numpy arrays (EDM2's reference statistics) without running any code.

A pickle names the callables that rebuild its objects, and a plain unpickler imports and calls whatever it
names: `os.system`, `builtins.eval`, a `__reduce__` of anything. This one resolves only the names numpy's own
array pickles use, each to a stand-in written here that checks its arguments and builds the array with
`np.frombuffer` (never numpy's `_reconstruct`/`__setstate__` on unchecked state):

- `multiarray._reconstruct` and `numpy.ndarray` (numpy 1.x `numpy.core.…`, 2.x `numpy._core.…`), written by
  `ndarray.__reduce__` in protocols 0–4: only `(ndarray, (0,), b'b')`, then BUILD `(1, shape, dtype, fortran,
  bytes)`;
- `numeric._frombuffer` (`ndarray.__reduce_ex__(5)`): `(bytes, dtype, shape, 'C' or 'F')`;
- `numpy.dtype` (every array and scalar): `(code, False, True)` for a bool/int/uint/float code, then BUILD of
  its plain state;
- `multiarray.scalar` (numpy scalars such as `np.float64(1.0)`): `(dtype, bytes of one item)`;
- `_codecs.encode` (bytes in protocols 0–2): `(str, 'latin1')`;
- `__builtin__.bytes` / `builtins.bytes` (empty bytes in protocols 0–2): `()`.

Nothing else: any other name, a persistent id or an out-of-band buffer is refused when it is read, before
anything is called. Sizes are bounded by the file: an array's shape must match the bytes that come with it
(a huge declared shape allocates nothing), BYTEARRAY8 may not announce more than the file holds, and the
number of opcodes is capped (each may create one object: deeply nested or endless containers stop there), and
an object the memo shares at many places is converted once (a 200-byte pickle can have 2^31 paths to its bottom).
The pure-Python unpickler is used (the C one sizes its memo by the largest index a PUT names).
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

import numpy as np

from ..errors import UnsafePickleError

# dtype codes an array of statistics or features can have: booleans, integers, floats (one to eight bytes).
_ALLOWED_KINDS = frozenset("biuf")
_MAX_ITEMSIZE = 8
_MAX_NDIM = 8
# An EDM2 reference pickle is ~60 opcodes (a dict of dicts of a few arrays); a million leaves room for any plain
# data a statistics file holds, and caps what a crafted file can make (at most one object per opcode).
MAX_OPCODES = 1_000_000


class _StandIn:
    """A callable stand-in for one allowed global: no `__dict__` and no settable attributes, so BUILD cannot
    alter it (a plain function's `__defaults__` could be rewritten by a crafted BUILD)."""

    __slots__ = ("_call", "_name")

    def __init__(self, name: str, call) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_call", call)

    def __setattr__(self, key, value):
        raise UnsafePickleError(f"the pickle tries to set {key!r} on {self._name}")

    def __call__(self, *args):
        return self._call(*args)

    def __repr__(self) -> str:
        return self._name


class _NdarrayMarker:
    """What `numpy.ndarray` resolves to: only ever an argument of `_reconstruct`; not callable, no state."""

    __slots__ = ()


_NDARRAY = _NdarrayMarker()


class _PendingDtype:
    """`numpy.dtype(code, False, True)`, completed by BUILD with its byte order (numpy pickles dtypes that way)."""

    __slots__ = ("dtype", "_built")

    def __init__(self, code: Any, align: Any, copy: Any) -> None:
        if not isinstance(code, str) or align is not False or copy is not True:
            raise UnsafePickleError(f"numpy.dtype with arguments numpy never writes ({_kind(code)}, {align!r})")
        try:
            dtype = np.dtype(code) if len(code) <= 4 else None
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.kind not in _ALLOWED_KINDS or dtype.itemsize > _MAX_ITEMSIZE or dtype.fields:
            raise UnsafePickleError(f"an array of dtype {code[:20]!r}: only booleans, integers and floats are read")
        self.dtype = dtype
        self._built = False

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata]) for a plain dtype:
        # version 3 (numpy's own for non-structured dtypes) or 4 (with metadata, which must be None).
        if self._built:
            raise UnsafePickleError("a dtype's state is set twice")
        if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
            raise UnsafePickleError("a dtype state that numpy does not write")
        order, subarray, names, fields, elsize, alignment, flags = state[1:8]
        metadata = state[8] if len(state) == 9 else None
        if order not in ("<", ">", "|", "=") or (subarray, names, fields, metadata) != (None, None, None, None):
            raise UnsafePickleError("a structured, sub-array or annotated dtype: only plain numbers are read")
        if elsize != -1 or alignment != -1 or not isinstance(flags, int) or isinstance(flags, bool) or flags != 0:
            raise UnsafePickleError("a dtype state that numpy does not write for plain numbers")
        if order in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(order)
        self._built = True


class _Budget:
    """Bytes the stand-ins may copy: a crafted pickle could otherwise rebuild one memoised buffer into an array
    a million times. Each array's bytes are copied once, so a few times the file's size is room enough."""

    __slots__ = ("left",)

    def __init__(self, file_size: int) -> None:
        self.left = 4 * file_size + (1 << 20)

    def spend(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            raise UnsafePickleError("the pickle rebuilds more array data than the file holds")


class _PendingArray:
    """`_reconstruct(ndarray, (0,), b'b')`: an empty array completed by BUILD with (1, shape, dtype, fortran,
    raw bytes)."""

    __slots__ = ("array", "_budget")

    def __init__(self, budget: _Budget) -> None:
        self.array: np.ndarray | None = None
        self._budget = budget

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise UnsafePickleError("an array's state is set twice")
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise UnsafePickleError("an array state that numpy does not write")
        _version, shape, dtype, fortran, data = state
        if not isinstance(fortran, bool):
            raise UnsafePickleError("an array state whose order flag is not a boolean")
        self.array = _array(self._budget, data, dtype, shape, "F" if fortran else "C")


def _kind(value: Any) -> str:
    return type(value).__name__


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > _MAX_NDIM:
        raise UnsafePickleError(f"an array shape that is not a tuple of at most {_MAX_NDIM} sizes")
    for size in shape:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UnsafePickleError("an array shape with a negative or non-integer size")
    return shape


def _array(budget: _Budget, data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """An own copy of the array `data` holds, after checking that its size is exactly what shape and dtype say
    (computed with Python integers: a shape of 2^60 elements overflows nothing and allocates nothing)."""
    if not isinstance(dtype, _PendingDtype):
        raise UnsafePickleError(f"an array whose dtype is a {_kind(dtype)}, not a numpy dtype")
    shape = _shape(shape)
    if isinstance(data, pickle.PickleBuffer):
        data = data.raw()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UnsafePickleError(f"an array whose data is a {_kind(data)}, not bytes (object arrays are not read)")
    count = 1
    for size in shape:
        count *= size
    expected = count * dtype.dtype.itemsize
    if len(data) != expected:
        raise UnsafePickleError(f"an array of shape {shape} declares {expected} bytes but holds {len(data)}")
    budget.spend(expected)
    flat = np.frombuffer(data, dtype=dtype.dtype)
    return flat.reshape(shape, order=order).copy(order="C")


def _allowed(budget: _Budget) -> dict[tuple[str, str], Any]:
    """The stand-ins of one load, sharing its byte budget."""

    def reconstruct(subtype: Any, shape: Any, typecode: Any) -> _PendingArray:
        if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
            raise UnsafePickleError("numpy's _reconstruct with arguments numpy never writes (only ndarray is read)")
        return _PendingArray(budget)

    def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        if order not in ("C", "F"):
            raise UnsafePickleError(f"numpy's _frombuffer with an order that is not 'C' or 'F' ({_kind(order)})")
        return _array(budget, buffer, dtype, shape, order)

    def scalar(dtype: Any, data: Any = None) -> Any:
        if not isinstance(dtype, _PendingDtype) or not isinstance(data, bytes):
            raise UnsafePickleError("numpy's scalar with arguments numpy never writes for a number")
        return _array(budget, data, dtype, (), "C")[()]

    def latin1(text: Any, encoding: Any = None) -> bytes:
        if not isinstance(text, str) or encoding != "latin1":
            raise UnsafePickleError("_codecs.encode with arguments other than the bytes of protocols 0-2")
        budget.spend(len(text))
        try:
            return text.encode("latin1")
        except UnicodeEncodeError:
            raise UnsafePickleError("_codecs.encode of characters that are no bytes") from None

    def empty_bytes(*args: Any) -> bytes:
        if args:
            raise UnsafePickleError("bytes() with arguments: only the empty bytes of protocols 0-2 are read")
        return b""

    table: dict[tuple[str, str], Any] = {
        ("__builtin__", "bytes"): _StandIn("bytes", empty_bytes),  # Python 2's name, as protocols 0-2 write it
        ("builtins", "bytes"): _StandIn("bytes", empty_bytes),
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _StandIn("numpy.dtype", _PendingDtype),
        ("_codecs", "encode"): _StandIn("_codecs.encode", latin1),
    }
    for core in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x write their own module paths
        table[(f"{core}.multiarray", "_reconstruct")] = _StandIn(f"{core}.multiarray._reconstruct", reconstruct)
        table[(f"{core}.multiarray", "scalar")] = _StandIn(f"{core}.multiarray.scalar", scalar)
        table[(f"{core}.numeric", "_frombuffer")] = _StandIn(f"{core}.numeric._frombuffer", frombuffer)
    return table


class _NumpyUnpickler(pickle._Unpickler):
    """Plain data, and numpy arrays through the stand-ins above; nothing else."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._size = len(data)
        self._opcodes = 0
        self._allowed = _allowed(_Budget(len(data)))

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 may write Python 2 names (`__builtin__`); none is allowed, so no mapping is needed.
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"the pickle names {str(module)[:80]}.{str(name)[:80]}, which is not allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("the pickle holds a persistent reference")

    def _load_bytearray8(self) -> None:
        # pickle's own allocates the announced length before reading it: bound it by the file first.
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._size:
            raise UnsafePickleError(f"the pickle announces {length} bytes in a file of {self._size}")
        buffer = bytearray(length)
        if self.readinto(buffer) != length:
            raise UnsafePickleError("the pickle is truncated")
        self.append(buffer)

    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8

    def load(self) -> Any:
        dispatch = self.dispatch

        def counted(opcode):
            def step(self):
                self._opcodes += 1
                if self._opcodes > MAX_OPCODES:
                    raise UnsafePickleError(f"the pickle has more than {MAX_OPCODES} opcodes")
                return opcode(self)

            return step

        self.dispatch = {key: counted(fn) for key, fn in dispatch.items()}
        return super().load()


# How deep containers may nest (EDM2's reference pickle is 2 deep: a dict of dicts of arrays).
_MAX_DEPTH = 32


def _too_deep() -> UnsafePickleError:
    return UnsafePickleError(f"the pickle nests containers more than {_MAX_DEPTH} deep")


def _finish(root: Any) -> Any:
    """Replace the stand-ins' pending objects by what they built; refuse any left incomplete. Plain data only:
    dicts with string or integer keys, lists, tuples, numbers, strings, bytes, None.

    A pickle's memo lets one container appear at many places (`L_k = [L_{k-1}, L_{k-1}]` is ~8 opcodes a level
    and has 2^k paths to its bottom), so each container is converted once, memoised by identity, and every place
    that holds it gets the same converted object: the work and the output are the size of the graph the
    unpickler built (at most one object per opcode), not its number of paths. Leaves (numbers, strings, bytes,
    arrays) are never copied, so shared ones cost no bytes past the stand-ins' budget. The rule is what reading
    every path would give: a container reached again deeper is refused if its own height takes it past
    `_MAX_DEPTH`, and one reached from inside itself (a cycle, endlessly deep) is refused the same way."""
    # id -> (the container, kept so that its id is not reused; its conversion; its height, the most levels a
    # path goes below it)
    done: dict[int, tuple[Any, Any, int]] = {}
    open_: set[int] = set()  # containers being converted: meeting one again is a cycle

    def finish(obj: Any, depth: int) -> tuple[Any, int]:
        if depth > _MAX_DEPTH:
            raise _too_deep()
        if isinstance(obj, _PendingArray):
            if obj.array is None:
                raise UnsafePickleError("an array without its state")
            return obj.array, 0
        if isinstance(obj, (dict, list, tuple)):
            key = id(obj)
            hit = done.get(key)
            if hit is not None:
                if depth + hit[2] > _MAX_DEPTH:
                    raise _too_deep()
                return hit[1], hit[2]
            if key in open_:
                raise _too_deep()
            open_.add(key)
            height = 0
            if isinstance(obj, dict):
                out: Any = {}
                for k, value in obj.items():
                    if not isinstance(k, (str, int)):
                        raise UnsafePickleError(f"a dict key that is a {_kind(k)}")
                    out[k], below = finish(value, depth + 1)
                    height = max(height, below + 1)
            else:
                items = []
                for value in obj:
                    item, below = finish(value, depth + 1)
                    items.append(item)
                    height = max(height, below + 1)
                out = type(obj)(items)
            open_.discard(key)
            done[key] = (obj, out, height)
            return out, height
        if obj is None or isinstance(obj, (bool, int, float, str, bytes, np.ndarray, np.generic)):
            return obj, 0
        raise UnsafePickleError(f"the pickle leaves a {_kind(obj)} object, not plain data")

    return finish(root, 0)[0]


def loads_numpy_pickle(data: bytes) -> Any:
    """The plain data and numpy arrays a pickle of any protocol (0-5) holds; `UnsafePickleError` (or
    `pickle.UnpicklingError`, ValueError… for a damaged file) for anything else, before it runs."""
    return _finish(_NumpyUnpickler(data).load())


__all__ = ["MAX_OPCODES", "UnsafePickleError", "loads_numpy_pickle"]
