"""What an input string is: an image file by its extension, a statistics file, a glob, a URL and which URLs fidrs
reads. A leaf module (it imports nothing of fidrs but the errors), so every resolver and every reader applies the
same rules.

URLs (issue 29 item 14): `file://` and `local://` (fsspec's alias for `file`) name local files and become local
paths, read by the hardened local reader like any path (a FIFO or device is refused by name, sizes are checked
before reading). A chained URL (`zip://…::file://…`, `tar://…::…`, `simplecache::…`) is refused: its outer layer
would read local files past that reader. Any other scheme is read by fsspec only if it is a remote or in-memory
store known to fidrs (`REMOTE_SCHEMES`); an unknown one is refused by name rather than trusted."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from ..display import display
from ..errors import InvalidInputError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# Statistics and reference files (fidrs.references reads them): .npz statistics and ADM batches, .npy feature
# arrays, EDM2's .pkl.
STATS_EXTENSIONS = frozenset({".npz", ".npy", ".pkl", ".pickle"})
ZIP_EXTENSIONS = frozenset({".zip"})

LOCAL_SCHEMES = frozenset({"file", "local"})
# Object stores and HTTP (fsspec's s3fs, gcsfs, adlfs, huggingface_hub, aiohttp) and fsspec's in-process memory
# store: none of them reads this machine's files.
REMOTE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "http", "https", "hf", "memory"})

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*(://|::)")


def extension(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def is_image(path: str) -> bool:
    return extension(path) in IMAGE_EXTENSIONS


def is_archive(path: str) -> bool:
    return extension(path) in ZIP_EXTENSIONS


def is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def is_url(text: str) -> bool:
    """`scheme://…` or a chained `scheme::…` (a Windows drive letter `C:\\` is not one)."""
    return bool(_URL.match(text))


def scheme(url: str) -> str:
    return re.split(r"://|::", url, maxsplit=1)[0].lower()


def local_path(url: str) -> str | None:
    """The local path a `file://` or `local://` URL names (to be read as a path), else None."""
    if "::" in url or scheme(url) not in LOCAL_SCHEMES:
        return None
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInputError(f"{display(url)}: a {parts.scheme}:// URL must name a local path ({parts.scheme}:///…)")
    return unquote(parts.path)


def check_remote_url(url: str) -> None:
    """Refuse a URL fidrs does not read through fsspec: chained, or of a scheme not known to be remote."""
    if "::" in url:
        raise InvalidInputError(
            f"{display(url)}: chained URLs (zip://…::, tar://…::, simplecache::…) are not read: their outer layer "
            "would read local files past fidrs' checks; extract the archive, or name the files themselves"
        )
    name = scheme(url)
    if name not in REMOTE_SCHEMES:
        raise InvalidInputError(
            f"{display(url)}: URLs of scheme {name!r} are not read (fidrs reads {', '.join(sorted(REMOTE_SCHEMES))}, "
            "and file:// paths)"
        )
