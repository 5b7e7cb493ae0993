"""Arrays read on demand from a `.npy` file or an `.npz` member: ADM's 10,000 reference images (`arr_0`, up to
7.9 GB at 512²) and feature files are opened, their header checked, and their rows read only when a metric asks,
a batch at a time.

The header is checked when the array is described, before any data is read: format version 1 or 2 (what
`np.save` writes), a dtype of the expected kinds (never an object array), C or Fortran order, and exactly as
many data bytes as the shape declares (a truncated file, or a header declaring a terabyte over a few bytes of
data, is refused then, naming the file).

Every `.npz` member fidrs reads goes through here (`read_npz_members`, which `files.read_npz` is): the archive's
members are named as numpy names them (`x.npy` and `x` are both `x`), and an archive in which two members have
one name is refused (numpy reads one of them, fidrs' readers might read the other: two tools, two FIDs); each
member's header is checked, its size against the cap, before any member's data is read (a few MB of deflated
zeros can declare gigabytes); an encrypted member, an unsupported compression method, or any error of zipfile
or of the decompressors under it (zlib, bzip2, LZMA) is InvalidInputError naming the file, the member and the
reason."""

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
from ..regular_files import open_regular

_MAX_NDIM = 8

# The largest statistics member (mu, sigma, the sums, any member of a statistics file) read whole: 1 GiB, a
# float64 covariance of up to 11,585 features. The one cap of every statistics reader (mu/sigma, ADM, fidrs).
MAX_STATS_MEMBER_BYTES = 1 << 30
# What the members of one statistics file may declare together: its two d×d members (sigma, Σxxᵀ) at the cap, and
# 1 MiB for its vectors and metadata. Each member within the cap, ten of them could ask for 10 GiB.
MAX_STATS_FILE_BYTES = 2 * MAX_STATS_MEMBER_BYTES + (1 << 20)

# Every dtype kind numpy's .npy holds except objects (which `read_npy_header` refuses): a caller's checks decide.
ANY_KIND = "biufcmMSUV"

try:  # zipfile reads LZMA members when the lzma module is there
    from lzma import LZMAError as _LZMAError
except ImportError:  # pragma: no cover - a Python built without liblzma
    _LZMAError = zlib.error

# What zipfile, and the decompressors under it, raise on a damaged, truncated, encrypted or unsupported archive or
# member: BadZipFile (bad magic, CRC), EOFError, OSError (I/O, bzip2's "Invalid data stream"), ValueError (bad
# offsets, names), NotImplementedError (compression methods, strong encryption), RuntimeError (a password needed,
# a decompressor module missing), zlib.error (deflate), LZMAError, struct.error, OverflowError (64-bit offsets).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    _LZMAError,
    struct.error,
    OverflowError,
)
# The compression methods read (those zipfile and numpy read); any other is refused by name.
_COMPRESSIONS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
_ENCRYPTED = 0x1 | 0x40  # general-purpose flags: traditional (ZipCrypto) and strong encryption


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
        if "max_header_size" in str(e):  # numpy's message would advise allow_pickle=True: never, for a file here
            raise InvalidInputError(
                f"{where}: its .npy header is over {max_header_size} bytes (a few hundred describe any array): "
                "damaged or crafted"
            ) from None
        raise InvalidInputError(f"{where}: not a readable .npy header ({type(e).__name__}: {e!s:.200})") from None
    if dtype.hasobject or len(shape) > _MAX_NDIM:
        raise InvalidInputError(f"{where}: an array of dtype {dtype} and shape {shape} is not read")
    if any(int(s) < 0 for s in shape):  # numpy's parser takes them; (-2, -4) would pass as 8 elements
        raise InvalidInputError(f"{where}: the header declares the shape {shape}, with a negative dimension")
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
    # A member's CRC-32 as its archive records it (None: a `.npy` file). Each read checks the data against it,
    # and a later read of a member whose header or CRC-32 is no longer this one is refused: another content.
    crc32: int | None = None

    @classmethod
    def open(cls, path: str, member: str | None = None, *, kinds: str = "biuf", max_bytes: int = 1 << 36) -> LazyArray:
        """Describe the array, checking its header against `kinds` (numpy dtype kinds), `max_bytes` and the
        bytes the file holds."""
        where = _where(path, member)
        with _stream(path, member) as (stream, available, crc32):
            shape, fortran, dtype, header = read_npy_header(stream, where)
        if dtype.kind not in kinds:
            raise InvalidInputError(f"{where}: dtype {dtype}, expected one of the kinds {kinds!r}")
        nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
        if nbytes > max_bytes:
            raise InvalidInputError(f"{where}: {shape} {dtype} is {nbytes} bytes, over the limit of {max_bytes}")
        if available - header != nbytes:
            state = "truncated" if available - header < nbytes else "longer than its header says (damaged or crafted)"
            raise InvalidInputError(
                f"{where}: the header declares {shape} {dtype} ({nbytes} bytes) but {available - header} bytes "
                f"follow it: the data is {state}"
            )
        return cls(path, member, shape, dtype, fortran, crc32)

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
        with _stream(self.path, self.member) as (stream, _available, crc32):
            shape, fortran, dtype, _ = read_npy_header(stream, self.where)
            if (shape, fortran, dtype, crc32) != (self.shape, self.fortran_order, self.dtype, self.crc32):
                raise InvalidInputError(f"{self.where}: the file changed since it was opened")
            yield stream

    def load(self) -> np.ndarray:
        """The whole array, in memory: read into one buffer a chunk at a time (never a second whole copy of the
        data), and writable, as numpy's own reader gives it."""
        order = "F" if self.fortran_order else "C"
        if self.dtype.itemsize == 0:
            return np.zeros(self.shape, dtype=self.dtype, order=order)
        flat = np.empty(self.nbytes, dtype=np.uint8)
        with self._data() as stream:
            done = 0
            while done < self.nbytes:
                chunk = stream.read(min(_CHUNK, self.nbytes - done))
                if not chunk:
                    raise InvalidInputError(
                        f"{self.where}: ended after {done} of {self.nbytes} bytes (changed while read?)"
                    )
                flat[done : done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                done += len(chunk)
        return flat.view(self.dtype).reshape(self.shape, order=order)

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


# Bytes read at a time by `load`: 1 MiB reads reuse the allocator's memory and stay in cache while zipfile's
# CRC reads them (measured on a 2,048-d fidrs file: 16 MiB reads 0.095 s, 1 MiB 0.045 s, np.load 0.040 s).
_CHUNK = 1 << 20


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


class _Guarded:
    """A member's stream whose read and seek errors (a damaged member: its CRC, its deflate, bzip2 or LZMA data,
    the file under it) are InvalidInputError naming the file and the member. Only the stream's own calls are
    mapped: an error in the code that reads from it is not taken for a damaged file."""

    def __init__(self, stream, where: str) -> None:
        self.stream, self.where = stream, where

    def _damaged(self, e: BaseException) -> InvalidInputError:
        return InvalidInputError(f"{self.where}: damaged ({type(e).__name__}: {e!s:.200})")

    def read(self, n: int | None = -1) -> bytes:
        try:
            return self.stream.read(n)
        except InvalidInputError:
            raise
        except ZIP_ERRORS as e:
            raise self._damaged(e) from None

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        try:
            return self.stream.seek(offset, whence)
        except InvalidInputError:
            raise
        except ZIP_ERRORS as e:
            raise self._damaged(e) from None

    def tell(self) -> int:
        return self.stream.tell()


def npz_names(archive: zipfile.ZipFile, path: str) -> dict[str, str]:
    """{name: member} of an `.npz` archive, named as numpy names them (`x.npy` and `x` are both `x`), in the
    archive's order. Two members of one name are refused, naming the file and the name: numpy (pytorch-fid,
    clean-fid) reads the member `x` when there is one and `x.npy` otherwise, and of a name stored twice (zip
    allows it) zipfile reads the last; a reader reading the other would compute another FID from the same file."""
    names: dict[str, str] = {}
    infos = archive.infolist()
    if infos and min(info.header_offset for info in infos) != 0:
        # zipfile reads an archive behind other data (another archive: two .npz files put end to end) from where
        # its directory says; numpy writes the first member at the start. Which archive is the file?
        raise InvalidInputError(
            f"{display(path)}: holds data before its archive's first member (another archive, or a damaged "
            "file): not an .npz as numpy writes it"
        )
    members = {info.filename for info in infos}
    for info in archive.infolist():
        member = info.filename
        name = member[:-4] if member.endswith(".npy") else member
        if name in names:
            other = names[name]
            if other == member:
                why = f"holds the member {member!r} twice"
            else:
                why = f"members {other!r} and {member!r} both name {name!r} (numpy reads the member {name!r})"
            raise InvalidInputError(f"{display(path)}: {why}: {name!r} is ambiguous, so the file is refused")
        names[name] = member
    for name, member in names.items():
        if name != member and name in members:  # `a.npy.npy` is `a.npy`, a name numpy also gives the member `a.npy`
            raise InvalidInputError(
                f"{display(path)}: members {name!r} and {member!r} both name {name!r}: {name!r} is ambiguous, so "
                "the file is refused"
            )
    return names


def _open_archive(f, path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(f)
    except ZIP_ERRORS as e:
        raise InvalidInputError(f"{display(path)}: not a readable .npz file ({type(e).__name__}: {e!s:.200})") from None


def _check_member(info: zipfile.ZipInfo, where: str) -> None:
    """Refuse, by name, what zipfile would fail on later: an encrypted member, a compression method not read."""
    if info.flag_bits & _ENCRYPTED:
        raise InvalidInputError(f"{where}: encrypted (a password-protected member is not read)")
    if info.compress_type not in _COMPRESSIONS:
        method = zipfile.compressor_names.get(info.compress_type, "unknown")
        raise InvalidInputError(
            f"{where}: compressed with method {info.compress_type} ({method}), which is not read "
            f"(only {', '.join(_COMPRESSIONS.values())} are)"
        )


@contextlib.contextmanager
def _stream(path: str, member: str | None):
    """(readable stream at the start of the array, bytes it holds, the member's recorded CRC-32 or None for a
    `.npy`), through `open_regular` (no FIFO, device…).
    A stored member is read in place (`_Window`); a compressed one through zipfile (sequential reads). Its
    errors, opening or reading, are InvalidInputError naming the file and the member (`_Guarded`)."""
    where = _where(path, member)
    with open_regular(path) as f:
        if member is None:
            yield f, os.fstat(f.fileno()).st_size, None
            return
        archive = _open_archive(f, path)
        with archive:
            npz_names(archive, path)  # the same names everywhere: a name given to two members is refused
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise InvalidInputError(f"{where}: no such member") from None
            _check_member(info, where)
            stored = info.compress_type == zipfile.ZIP_STORED
            try:
                stream = _stored_window(f, info, where) if stored else archive.open(info)
            except InvalidInputError:
                raise
            except ZIP_ERRORS as e:
                raise InvalidInputError(
                    f"{where}: not a readable .npz archive ({type(e).__name__}: {e!s:.200})"
                ) from None
            with contextlib.nullcontext() if stored else stream:
                yield _Guarded(stream, where), info.file_size, info.CRC


def open_npz_arrays(
    path: str | os.PathLike,
    keys: list[str] | None = None,
    *,
    kinds: str = ANY_KIND,
    max_member_bytes: int = MAX_STATS_MEMBER_BYTES,
    max_total_bytes: int | None = None,
) -> tuple[list[str], dict[str, LazyArray]]:
    """(every name the `.npz` holds, in order; {name: its LazyArray} for the wanted ones): `read_npz_members`
    before any data is read, every check made."""
    path = os.fspath(path)
    with open_regular(path) as f:
        head = f.read(4)
        if head[:2] != b"PK":
            what = "empty" if not head else "a .npy array, not an .npz archive" if head == b"\x93NUM" else "not an .npz"
            raise InvalidInputError(f"{display(path)}: {what} file")
        f.seek(0)
        with _open_archive(f, path) as archive:
            names = npz_names(archive, path)
    wanted = list(names) if keys is None else [key for key in dict.fromkeys(keys) if key in names]
    # Every header first: a member over the cap is refused before any data (of it or another) is inflated.
    arrays = {key: LazyArray.open(path, names[key], kinds=kinds, max_bytes=max_member_bytes) for key in wanted}
    total = sum(array.nbytes for array in arrays.values())
    if max_total_bytes is not None and total > max_total_bytes:
        raise InvalidInputError(
            f"{display(path)}: its members {', '.join(wanted)} declare {total} bytes together, over the limit of "
            f"{max_total_bytes}"
        )
    return list(names), arrays


def read_npz_members(
    path: str | os.PathLike,
    keys: list[str] | None = None,
    *,
    kinds: str = ANY_KIND,
    max_member_bytes: int = MAX_STATS_MEMBER_BYTES,
    max_total_bytes: int | None = None,
) -> dict:
    """The arrays of an `.npz` (all, or those of `keys` that it has, by numpy's names: `mu` is the member
    `mu.npy` or `mu`), each of the dtype `kinds` and at most `max_member_bytes`, plus `__files__`: every name
    it holds, in order. Without pickle; every header (and so every size) is checked before any member's data
    is read; an empty, foreign or damaged file, an ambiguous name (`npz_names`), a member that is no `.npy` or
    is over the cap, or wanted members declaring more than `max_total_bytes` together (None: no bound but the
    per-member one): InvalidInputError naming the file, the member and the reason. The `.npz` reader of fidrs:
    statistics files of every format go through it."""
    names, arrays = open_npz_arrays(
        path, keys, kinds=kinds, max_member_bytes=max_member_bytes, max_total_bytes=max_total_bytes
    )
    return {"__files__": names, **{key: array.load() for key, array in arrays.items()}}


def open_npz_member(path: str, name: str, **checks) -> LazyArray:
    """`LazyArray.open` of the member numpy names `name` (`name.npy`, or `name`) of the `.npz` at `path`."""
    with open_regular(path) as f, _open_archive(f, path) as archive:
        member = npz_names(archive, path).get(name, f"{name}.npy")
    return LazyArray.open(path, member, **checks)


__all__ = [
    "ANY_KIND",
    "MAX_STATS_FILE_BYTES",
    "MAX_STATS_MEMBER_BYTES",
    "ZIP_ERRORS",
    "LazyArray",
    "npz_names",
    "open_npz_arrays",
    "open_npz_member",
    "read_npz_members",
]
