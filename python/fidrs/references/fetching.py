"""Fetching catalogued references: `fetch(name)` gives the path of a verified copy, `resolve("ref:NAME")` the
file read with its catalogue provenance.

Where a reference's file comes from, in order: `FIDRS_REF_<NAME>` (a local copy: air-gapped machines), the
cache (`<fidrs cache>/references/<collection>/<file>`), then a download from its URL (`FIDRS_REF_URL_<NAME>`
overrides it: a mirror) through `fidrs.download` (size cap, deadline, `.part`, atomic rename).

Verification: the published sha256 where there is one; none of the catalogued publishers gives one, so the
first download is checked for the layout its catalogue entry describes (format, statistics sets, backbones)
and its sha256 recorded beside it (trust on first use); a later copy that differs is refused. Any reference can
be pinned (`sha256=`, `FIDRS_REF_SHA256_<NAME>`). The record also holds the file's size and mtime: an unchanged
file is not hashed again on every use (ADM's 512² batch is 7.9 GB); `verify=True` hashes it anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import config
from ..display import display
from ..errors import (
    IncompatibleStatsError,
    InvalidInputError,
    ReferenceHashMismatchError,
    ReferenceUnavailableError,
)
from ..files import atomic_write_bytes
from ..identity import sha256_file
from ..regular_files import open_regular
from .catalogue import CatalogueEntry, list_references, lookup
from .readers import read_reference
from .reference import ReferenceFile

PREFIX = "ref:"
# A download may take the cap over this rate, and never less than DEADLINE_S: ADM's 7.9 GB batch gets 63 min.
MIN_RATE_BYTES_S = 2 << 20


def is_reference(text: Any) -> bool:
    """`ref:NAME` names a catalogued reference."""
    return isinstance(text, str) and text.startswith(PREFIX)


def cache_path(entry: CatalogueEntry) -> Path:
    return Path(config.cache_root()) / "references" / entry.collection / entry.filename


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


@dataclass(frozen=True)
class _Record:
    """What was verified: the sha256 of a file of this size and mtime."""

    sha256: str
    size: int
    mtime_ns: int


def _read_record(path: Path) -> _Record | None:
    record = _record_path(path)
    try:
        with open_regular(record) as f:
            text = f.read(256).decode("ascii", "replace").split()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InvalidInputError(f"{display(record)}: cannot read the recorded sha256 ({e})") from None
    if len(text) != 3 or len(text[0]) != 64 or not (text[1].isdigit() and text[2].isdigit()):
        raise ReferenceHashMismatchError(
            f"{display(record)}: not a sha256 record; delete it and {display(path)} to download the reference again"
        )
    return _Record(text[0], int(text[1]), int(text[2]))


def _write_record(path: Path, sha256: str, stat: os.stat_result) -> None:
    atomic_write_bytes(_record_path(path), f"{sha256} {stat.st_size} {stat.st_mtime_ns}\n".encode())


def _pin(entry: CatalogueEntry, sha256: str | None) -> tuple[str, str] | None:
    """(hash, where it comes from) of a pin, checked to be a sha256."""
    pinned, source = (sha256, "sha256=") if sha256 is not None else (config.reference_pin(entry.name), None)
    if pinned is None:
        return None
    source = source or config.reference_pin_variable(entry.name)
    expected = pinned.strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise InvalidInputError(f"{source} must be 64 hex digits (a sha256), got {pinned!r}")
    return expected, source


def _check_hashes(entry: CatalogueEntry, path: Path, sha: str, pin, record: _Record | None) -> None:
    from ..download import sha256_matches  # here: reading a local file needs no HTTP/TLS modules

    if entry.sha256 is not None and not sha256_matches(sha, entry.sha256):
        raise ReferenceHashMismatchError(
            f"{display(path)}: sha256 {sha}, but {entry.name} is published with {entry.sha256}: not the published "
            "file; delete it to download it again"
        )
    if pin is not None and sha != pin[0]:
        raise ReferenceHashMismatchError(f"{display(path)}: sha256 {sha}, but {pin[1]} pins {pin[0]}")
    if record is not None and sha != record.sha256:
        where = display(_record_path(cache_path(entry)))
        raise ReferenceHashMismatchError(
            f"{display(path)}: sha256 {sha} differs from {record.sha256}, recorded in {where} when {entry.name} "
            f"was first verified; if its publisher changed the file, delete {where} and the cached copy to accept "
            "the new one"
        )


def _check_layout(entry: CatalogueEntry, path: Path, origin: str) -> None:
    """The file is what the catalogue describes: its format, statistics sets and backbones."""
    try:
        read_reference(path, entry.format).with_provenance(entry.provenance())
    except (InvalidInputError, IncompatibleStatsError) as e:
        message = str(e).replace(display(path), "").lstrip(": ")
        raise ReferenceHashMismatchError(f"{origin} is not the published {entry.name} ({message})") from None


def _check_size(entry: CatalogueEntry, path: Path, size: int, origin: str) -> None:
    if size > entry.max_bytes:
        raise ReferenceHashMismatchError(
            f"{origin}: {size} bytes, more than the {entry.max_bytes} bytes {entry.name} can have"
        )


def _use_local(entry: CatalogueEntry, path: Path, pin) -> Path:
    """`FIDRS_REF_<NAME>`: used as the reference once its size, and any hash there is to check, agree."""
    variable = config.reference_variable(entry.name)
    if not path.exists():
        raise ReferenceUnavailableError(f"{display(path)}: no such file (from {variable})")
    with open_regular(path) as f:  # a FIFO, device or folder is refused by name
        size = os.fstat(f.fileno()).st_size
    _check_size(entry, path, size, f"{display(path)} (from {variable})")
    record = _read_record(cache_path(entry)) if cache_path(entry).exists() else None
    if entry.sha256 is not None or pin is not None or record is not None:
        _check_hashes(entry, path, sha256_file(path), pin, record)
    return path


def _use_cached(entry: CatalogueEntry, path: Path, pin, rehash: bool) -> Path:
    st = os.stat(path)
    _check_size(entry, path, st.st_size, display(path))
    record = _read_record(path)
    if record is not None and (record.size, record.mtime_ns) == (st.st_size, st.st_mtime_ns) and not rehash:
        sha = record.sha256  # unchanged since it was verified
    else:
        sha = sha256_file(path)
    _check_hashes(entry, path, sha, pin, record)
    if record is None:  # put there by hand: verified and recorded now
        _check_layout(entry, path, display(path))
    if record is None or (record.size, record.mtime_ns) != (st.st_size, st.st_mtime_ns):
        _write_record(path, sha, st)
    return path


def _unavailable(entry: CatalogueEntry, url: str, reason: str) -> ReferenceUnavailableError:
    return ReferenceUnavailableError(
        f"could not download the reference {entry.name} from {url} ({reason}).\n"
        f"Without network access, download {entry.filename} elsewhere ({entry.url}) and set "
        f"{config.reference_variable(entry.name)}=PATH (fidrs then uses it as {entry.name}, with its provenance), "
        f"or put it in {cache_path(entry).parent}{os.sep}."
    )


def _download(entry: CatalogueEntry, path: Path, pin, url: str | None, deadline_s: float | None) -> Path:
    from ..download import DEADLINE_S, download  # imported when a download runs (HTTP, TLS: ~20 ms)

    source = url or config.reference_url(entry.name) or entry.url
    origin = f"the file downloaded from {source} (deleted)"

    def verify(part: Path, sha: str) -> None:
        _check_hashes(entry, part, sha, pin, None)
        _check_layout(entry, part, origin)
        _write_record(path, sha, os.stat(part))  # the rename keeps size and mtime

    def mismatch(message: str) -> ReferenceHashMismatchError:
        return ReferenceHashMismatchError(f"{entry.name}: {message}")

    deadline = deadline_s if deadline_s is not None else max(DEADLINE_S, entry.max_bytes / MIN_RATE_BYTES_S)
    download(
        source,
        path,
        max_bytes=entry.max_bytes,
        unavailable=lambda reason: _unavailable(entry, source, reason),
        mismatch=mismatch,
        sha256=entry.sha256,
        verify=verify,
        deadline_s=deadline,
    )
    return path


def fetch(
    name: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    deadline_s: float | None = None,
    verify: bool = False,
) -> Path:
    """The path of a verified copy of the catalogued reference `name` (`ref:` optional): `FIDRS_REF_<NAME>`, the
    cache, or a download (from `url`, `FIDRS_REF_URL_<NAME>` or its own URL). `sha256` pins it; `verify` hashes
    a cached copy even when its size and mtime are those recorded."""
    entry = lookup(name[len(PREFIX) :] if is_reference(name) else name)
    pin = _pin(entry, sha256)
    local = config.reference_path(entry.name)
    if local:
        return _use_local(entry, Path(local), pin)
    path = cache_path(entry)
    if os.path.lexists(path):
        try:
            return _use_cached(entry, path, pin, verify)
        except OSError as e:  # a dangling link, a permission problem (a FIFO is refused by name before)
            if isinstance(e, InvalidInputError):
                raise
            raise InvalidInputError(f"{display(path)}: cannot read the cached reference ({e.strerror or e})") from None
    return _download(entry, path, pin, url, deadline_s)


def resolve(text: str | os.PathLike, **fetch_options: Any) -> ReferenceFile:
    """`ref:NAME`: the catalogued reference, fetched and read with its catalogue provenance (its backbones and
    modes); a path: the file read with what it records itself (else unknown)."""
    if not is_reference(text):
        return read_reference(text)
    entry = lookup(text[len(PREFIX) :])
    path = fetch(entry.name, **fetch_options)
    note = f"{entry.name}: {entry.dataset}; made by {entry.made_by}; licence {entry.licence}; cite {entry.citation}"
    return read_reference(path, entry.format).with_provenance(entry.provenance(), note=note)


def info(name: str) -> dict[str, Any]:
    """A catalogued reference as data (for `fidrs refs info`): the manifest's fields and its cache state."""
    entry = lookup(name[len(PREFIX) :] if is_reference(name) else name)
    path = cache_path(entry)
    record = None
    if not path.exists():
        state = "not downloaded"
    else:
        try:
            record = _read_record(path)
        except InvalidInputError:
            record = None
        state = "downloaded" if record is not None else "downloaded, not yet verified"
    return {
        "name": entry.name,
        "aliases": list(entry.aliases),
        "url": entry.url,
        "file": entry.filename,
        "format": entry.format,
        "max_bytes": entry.max_bytes,
        "sha256": entry.sha256,
        "sha256_source": "published" if entry.sha256 else "recorded on first download",
        "recorded_sha256": record.sha256 if record else None,
        "dataset": entry.dataset,
        "n": entry.n,
        "images": entry.images,
        "tool": entry.tool,
        "made_by": entry.made_by,
        "published_at": entry.published_at,
        "licence": entry.licence,
        "citation": entry.citation,
        "statistics": [
            {"label": s.label, "backbone": s.backbone, "mode": s.mode, "protocol": s.protocol} for s in entry.statistics
        ],
        "path": str(path),
        "state": state,
        "variable": config.reference_variable(entry.name),
        "url_variable": config.reference_url_variable(entry.name),
        "pin_variable": config.reference_pin_variable(entry.name),
    }


def table(collection: str | None = None) -> str:
    """`fidrs refs list`: one line per reference."""
    header = ("reference", "statistics (backbone mode)", "n", "format", "cache")
    rows = []
    for name in list_references(collection):
        entry = lookup(name)
        stats = ", ".join(f"{s.backbone} {s.mode}" for s in entry.statistics)
        cached = "downloaded" if cache_path(entry).exists() else "-"
        rows.append((name, stats, f"{entry.n:,}" if entry.n else "?", entry.format, cached))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *rows)]
    return "\n".join(lines) + f"\ncache: {Path(config.cache_root()) / 'references'}"


__all__ = ["PREFIX", "cache_path", "fetch", "info", "is_reference", "resolve", "table"]
