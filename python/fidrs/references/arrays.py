"""Arrays read on demand from a `.npy` file or an `.npz` member: ADM's 10,000 reference images (`arr_0`, up to
7.9 GB at 512²) and feature files are opened, their header checked, and their rows read only when a metric asks,
a batch at a time.

The header is checked when the array is described, before any data is read: format version 1 or 2 (what
`np.save` writes), a dtype of the expected kinds (never an object array), C or Fortran order, and exactly as
many data bytes as the shape declares (a truncated file, or a header declaring a terabyte over a few bytes of
data, is refused then, naming the file)."""

from __future__ import annotations

import contextlib
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..display import display
from ..errors import InvalidInputError
from ..files import open_regular

_MAX_NDIM = 8


def _where(path: str, member: str | None) -> str:
    return display(path) if member is None else f"{display(path)}: member {member!r}"


def read_npy_header(stream, where: str, max_header_size: int = 10_000) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of the `.npy` data starting at the stream's position: format
    version 1, 2 or 3 (what `np.save` writes), never an object dtype, a header of at most `max_header_size`
    bytes (NumPy's own cap). The one `.npy` header parser of fidrs (embedding files use it too)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream, max_header_size=max_header_size)
        elif version in ((2, 0), (3, 0)):  # 3.0 is 2.0 with UTF-8 field names
            shape, fortran, dtype = fmt.read_array_header_2_0(stream, max_header_size=max_header_size)
        else:
            raise InvalidInputError(
                f"{where}: .npy format version {version[0]}.{version[1]} is not read (1.0, 2.0, 3.0 are)"
            )
    except InvalidInputError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises ValueError (and others) on damage
        raise InvalidInputError(f"{where}: not a readable .npy header ({type(e).__name__}: {e!s:.200})") from None
    if dtype.hasobject or len(shape) > _MAX_NDIM:
        raise InvalidInputError(f"{where}: an array of dtype {dtype} and shape {shape} is not read")
    return tuple(int(s) for s in shape), bool(fortran), dtype, stream.tell()


@dataclass(frozen=True)
class LazyArray:
    """A `.npy` array (`member` None) or an `.npz` member, described by its checked header; `load()`, `rows()`
    and `batches()` read its data."""

    path: str
    member: str | None
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @classmethod
    def open(cls, path: str, member: str | None = None, *, kinds: str = "biuf", max_bytes: int = 1 << 36) -> LazyArray:
        """Describe the array, checking its header against `kinds` (numpy dtype kinds), `max_bytes` and the
        bytes the file holds."""
        where = _where(path, member)
        with _stream(path, member) as (stream, available):
            shape, fortran, dtype, header = read_npy_header(stream, where)
        if dtype.kind not in kinds:
            raise InvalidInputError(f"{where}: dtype {dtype}, expected one of the kinds {kinds!r}")
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
        if nbytes > max_bytes:
            raise InvalidInputError(f"{where}: {shape} {dtype} is {nbytes} bytes, over the limit of {max_bytes}")
        if available - header != nbytes:
            raise InvalidInputError(
                f"{where}: the header declares {shape} {dtype} ({nbytes} bytes) but {available - header} bytes "
                "follow it: the file is truncated or damaged"
            )
        return cls(path, member, shape, dtype, fortran)

    @property
    def where(self) -> str:
        return _where(self.path, self.member)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.dtype.itemsize * int(np.prod(self.shape, dtype=object))

    def _read(self, stream, nbytes: int) -> bytes:
        data = stream.read(nbytes)
        if len(data) != nbytes:
            raise InvalidInputError(f"{self.where}: ended after {len(data)} of {nbytes} bytes (changed while read?)")
        return data

    @contextlib.contextmanager
    def _data(self) -> Iterator:
        """The stream positioned at the data, after checking the header is still the one described."""
        with _stream(self.path, self.member) as (stream, _available):
            shape, fortran, dtype, _ = read_npy_header(stream, self.where)
            if (shape, fortran, dtype) != (self.shape, self.fortran_order, self.dtype):
                raise InvalidInputError(f"{self.where}: the file changed since it was opened")
            yield stream

    def load(self) -> np.ndarray:
        """The whole array, in memory (read-only: it wraps the bytes read, no second copy)."""
        with self._data() as stream:
            flat = np.frombuffer(self._read(stream, self.nbytes), dtype=self.dtype)
        return flat.reshape(self.shape, order="F" if self.fortran_order else "C")

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows `start:stop` along the first axis (a Fortran-ordered array is loaded whole first)."""
        start, stop, _ = slice(start, stop).indices(len(self))
        stop = max(stop, start)
        if self.fortran_order or not self.shape:
            return np.ascontiguousarray(self.load()[start:stop])
        row = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=object))
        with self._data() as stream:
            stream.seek(row * start, os.SEEK_CUR)
            data = self._read(stream, row * (stop - start))
        return np.frombuffer(data, dtype=self.dtype).reshape((stop - start, *self.shape[1:]))

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of at most `size` rows, read in one pass over the file."""
        if size < 1:
            raise ValueError("batch size must be positive")
        if self.fortran_order or not self.shape:
            yield np.ascontiguousarray(self.load())
            return
        row = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=object))
        with self._data() as stream:
            for start in range(0, len(self), size):
                count = min(size, len(self) - start)
                yield np.frombuffer(self._read(stream, row * count), dtype=self.dtype).reshape((count, *self.shape[1:]))


class _Window:
    """`size` bytes of a file from `start`, read as a stream of their own: a stored (uncompressed) `.npz`
    member read in place, so that seeking to a row is O(1) (zipfile's member stream reads and discards every
    byte before the position: ADM's 7.9 GB batch would be re-read for every batch of rows). As zipfile's own
    stream does, a read that reaches the end having read every byte in order checks the member's CRC-32."""

    def __init__(self, f, start: int, size: int, crc: int, name: str) -> None:
        self.f, self.start, self.size, self.pos = f, start, size, 0
        self.expected_crc, self.name = crc, name
        self.crc, self.in_order = 0, True  # the CRC of bytes 0:pos, while they were all read in order

    def read(self, n: int | None = -1) -> bytes:
        left = self.size - self.pos
        n = left if n is None or n < 0 else min(n, left)
        self.f.seek(self.start + self.pos)
        data = self.f.read(n)
        self.pos += len(data)
        if self.in_order:
            self.crc = zlib.crc32(data, self.crc)
            if self.pos == self.size and self.crc != self.expected_crc:
                raise zipfile.BadZipFile(f"Bad CRC-32 for file {self.name!r}")
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: self.size}[whence]
        target = max(0, min(self.size, base + offset))
        if target != self.pos:
            self.in_order = False  # bytes skipped or read again: the CRC is not known
        self.pos = target
        return self.pos

    def tell(self) -> int:
        return self.pos


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, …, file name length, extra field length (30 bytes)


def _stored_window(f, info: zipfile.ZipInfo, where: str) -> _Window:
    """The data of a stored member, located through its local header (which may differ from the central
    directory's copy in its extra field, so its own lengths are read)."""
    f.seek(info.header_offset)
    local = f.read(_LOCAL_HEADER.size)
    if len(local) != _LOCAL_HEADER.size or _LOCAL_HEADER.unpack(local)[0] != b"PK\x03\x04":
        raise InvalidInputError(f"{where}: damaged (no local header where the directory says)")
    _, name_length, extra_length = _LOCAL_HEADER.unpack(local)
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if start + info.file_size > os.fstat(f.fileno()).st_size:
        raise InvalidInputError(f"{where}: truncated (the member's data ends past the end of the file)")
    return _Window(f, start, info.file_size, info.CRC, info.filename)


@contextlib.contextmanager
def _stream(path: str, member: str | None):
    """(readable stream at the start of the array, bytes it holds), through `open_regular` (no FIFO, device…).
    A stored member is read in place (`_Window`); a compressed one through zipfile (sequential reads)."""
    where = _where(path, member)
    with open_regular(path) as f:
        if member is None:
            yield f, os.fstat(f.fileno()).st_size
            return
        try:
            archive = zipfile.ZipFile(f)
            info = archive.getinfo(member)
            stored = info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1  # 0x1: encrypted
            stream = _stored_window(f, info, where) if stored else archive.open(info)
        except KeyError:
            raise InvalidInputError(f"{where}: no such member") from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise InvalidInputError(f"{where}: not a readable .npz archive ({e})") from None
        try:
            with archive, contextlib.nullcontext() if stored else stream:
                yield stream, info.file_size
        except InvalidInputError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:  # a damaged member: CRC, inflate
            raise InvalidInputError(f"{where}: damaged ({type(e).__name__}: {e})") from None


__all__ = ["LazyArray"]
