"""Images named by URL, read with fsspec (the filesystem layer of the PyData stack: s3fs, gcsfs, adlfs, HTTP, …;
imported only for a URL), decoded from memory by the same decoder as local files. Which URLs are read, and why
`file://`/`local://` become local paths, is in `rules`. Listing happens once, on the caller's side; each cluster
worker reads its own files."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import _fidrs
from ..display import display
from ..errors import DuplicateFilesWarning, EmptyInputError, InvalidInputError
from . import rules
from .base import Source
from .local import expand, files_of

_INSTALL_HINT = "pip install fsspec (plus s3fs, gcsfs, … for the filesystem you use)"


@dataclass(frozen=True)
class RemoteFiles(Source):
    """Image files named by URL (`s3://…`, `gs://…`, `https://…`, `memory://…`)."""

    paths: list[str]

    kind = "URLs"
    distributable = True

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labels(self) -> Sequence[str]:
        return self.paths

    def read_blobs(self, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
        return read_urls(self.paths[start:stop], _fidrs.max_file_bytes(max_pixels))

    def split(self, start: int, stop: int) -> RemoteFiles:
        return RemoteFiles(self.paths[start:stop])


def _filesystem(url: str):
    rules.check_remote_url(url)
    try:
        import fsspec
    except ImportError:
        raise InvalidInputError(f"{display(url)}: reading URLs needs fsspec: {_INSTALL_HINT}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # unknown protocol, or its package is missing
        raise InvalidInputError(f"{display(url)}: no filesystem for this URL ({e}); {_INSTALL_HINT}") from None


def list_urls(url: str) -> list[str]:
    """The image files below a folder URL (recursive, sorted), the files a glob URL matches, or the file."""
    fs, root = _filesystem(url)
    try:
        if rules.is_glob(root):
            found = [p for p in fs.glob(root) if rules.is_image(p)]
        elif fs.isdir(root):
            found = [p for p in fs.find(root) if rules.is_image(p)]
        elif fs.exists(root):
            found = [root]
        else:
            raise InvalidInputError(f"{display(url)}: no such file or folder")
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{display(url)}: cannot be listed ({e})") from None
    if not found:
        raise EmptyInputError(f"{display(url)}: no image files found")
    return sorted(fs.unstrip_protocol(p) for p in found)


def _bounded_read(fs, root: str, max_bytes: int) -> bytes | str:
    """A file whose size the store does not say: read at most one byte past the cap."""
    try:
        with fs.open(root, "rb") as f:
            data = f.read(max_bytes + 1)
    except (OSError, ValueError) as e:
        return f"cannot be read ({type(e).__name__}: {e})"
    return (
        data if len(data) <= max_bytes else f"over the limit of {max_bytes} bytes for an image within the pixel limit"
    )


def read_urls(urls: list[str], max_bytes: int) -> list[bytes | str]:
    """Each file's bytes, or why it cannot be read. Sizes are asked first (a file over `max_bytes` is refused
    before it is fetched; one of unknown size is read up to the cap) and the files of known size are fetched
    together: object stores serve them concurrently, where one request after another would wait out each
    request's latency."""
    if not urls:
        return []
    fs, _ = _filesystem(urls[0])
    roots = [fs._strip_protocol(url) for url in urls]
    out: list[bytes | str] = ["" for _ in urls]
    try:
        sizes = fs.sizes(roots)
    except (OSError, ValueError):
        sizes = [None] * len(roots)  # asked again one by one below, to name the file that fails
    wanted = []
    for i, (root, size) in enumerate(zip(roots, sizes)):
        if size is None:
            try:
                size = fs.size(root)
            except (OSError, ValueError) as e:
                out[i] = f"cannot be read ({type(e).__name__}: {e})"
                continue
        if size is None:
            out[i] = _bounded_read(fs, root, max_bytes)
        elif size > max_bytes:
            out[i] = f"{size} bytes is over the limit of {max_bytes} for an image within the pixel limit"
        else:
            wanted.append(i)
    fetched = fs.cat([roots[i] for i in wanted], on_error="return") if wanted else {}
    for i in wanted:
        data = fetched.get(roots[i], fetched.get(urls[i]))
        if isinstance(data, (bytes, bytearray)):
            out[i] = bytes(data) if len(data) <= max_bytes else f"over the limit of {max_bytes} bytes"
        else:
            reason = f"{type(data).__name__}: {data}" if isinstance(data, BaseException) else "no data"
            out[i] = f"cannot be read ({reason})"
    return out


def once_each_url(urls: list[str]) -> list[str]:
    """Keep the first of repeated URLs (one object, counted once), saying so."""
    kept = list(dict.fromkeys(urls))
    if len(kept) < len(urls):
        warnings.warn(
            f"{len(urls) - len(kept)} URL(s) were listed more than once, counted once",
            DuplicateFilesWarning,
            stacklevel=4,
        )
    return kept


def resolve_url(inputs: Any, allow_stats: bool) -> Source | None:
    """A remote URL (local ones were made paths by `sources.resolve`), listed once."""
    if not isinstance(inputs, (str, os.PathLike)) or not rules.is_url(os.fspath(inputs)):
        return None
    return RemoteFiles(once_each_url(list_urls(os.fspath(inputs))))


def resolve_list(inputs: Any, allow_stats: bool) -> Source | None:
    """A list of paths or URLs (kept in order; URLs and paths are not mixed)."""
    if isinstance(inputs, (str, bytes, os.PathLike)) or not isinstance(inputs, Sequence):
        return None
    items = [os.fspath(p) for p in inputs]
    if not items:
        raise EmptyInputError("the list of image paths is empty")
    items = [(rules.local_path(p) or p) if rules.is_url(p) else p for p in items]  # file:// URLs are local paths
    remote = [rules.is_url(p) for p in items]
    if any(remote):
        if not all(remote):
            raise InvalidInputError("a list of inputs mixes URLs and local paths; pass one kind")
        return RemoteFiles(once_each_url([url for item in items for url in list_urls(item)]))
    paths = [p for item in items for p in expand(item)]
    if not paths:
        raise EmptyInputError("the given paths contain no image files")
    return files_of(paths, "the given paths")
