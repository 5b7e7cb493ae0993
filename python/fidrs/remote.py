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
    """Each file's bytes, or why it cannot be read: a file over `max_bytes` is refused from its size before it
    is fetched (and again while reading, should the size be wrong)."""
    out: list[bytes | str] = []
    for url in urls:
        fs, root = _filesystem(url)
        try:
            size = fs.size(root)
            if size is not None and size > max_bytes:
                out.append(f"{size} bytes is over the limit of {max_bytes} for an image within the pixel limit")
                continue
            with fs.open(root, "rb") as f:
                data = f.read(max_bytes + 1)
        except (OSError, ValueError) as e:
            out.append(f"cannot be read ({type(e).__name__}: {e})")
            continue
        if len(data) > max_bytes:
            out.append(f"over the limit of {max_bytes} bytes for an image within the pixel limit")
            continue
        out.append(data)
    return out
