"""Images named by URL, read with fsspec (the filesystem layer of the PyData stack: s3fs, gcsfs, adlfs, HTTP,
…; fidrs imports it only for a URL). Listing happens once, on the caller's side; each worker reads its own
files. `file://` URLs are handed back as local paths, so that they go through the hardened local reader
(a FIFO named `x.png` is refused, never opened)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from .errors import EmptyInputError, InvalidInputError
from .files import display

_INSTALL_HINT = "pip install fsspec (plus s3fs, gcsfs, … for the filesystem you use)"


def local_path(url: str) -> str | None:
    """The local path of a `file://` URL, else None."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise InvalidInputError(f"{display(url)}: a file:// URL must name a local path (file:///…)")
    return unquote(parts.path)


def _filesystem(url: str):
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
    from .inputs import _is_glob, _is_image

    fs, root = _filesystem(url)
    try:
        if _is_glob(root):
            found = [p for p in fs.glob(root) if _is_image(p)]
        elif fs.isdir(root):
            found = [p for p in fs.find(root) if _is_image(p)]
        elif fs.exists(root):
            found = [root]
        else:
            raise InvalidInputError(f"{display(url)}: no such file or folder")
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{display(url)}: cannot be listed ({e})") from None
    if not found:
        raise EmptyInputError(f"{display(url)}: no image files found")
    return sorted(fs.unstrip_protocol(p) for p in found)


def read_urls(urls: list[str], max_bytes: int) -> list[bytes | str]:
    """Each file's bytes, or why it cannot be read. Sizes are asked first (a file over `max_bytes` is refused
    before it is fetched) and the files are fetched together: object stores (s3fs, gcsfs, HTTP) serve them
    concurrently, where one request after another would wait out each request's latency."""
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
        if size is not None and size > max_bytes:
            out[i] = f"{size} bytes is over the limit of {max_bytes} for an image within the pixel limit"
            continue
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
