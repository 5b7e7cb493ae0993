"""The image members of a zip archive, decoded from memory. Members are read by their directory entry, not their
name, so two members with the same name are two images (their labels then carry `#k`)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import _fidrs
from ..display import display
from ..errors import EmptyInputError, InvalidInputError
from ..regular_files import open_regular
from . import rules
from .base import Source
from .local import warn_nested_archives


@dataclass(frozen=True)
class ZipImages(Source):
    archive: str
    members: list[zipfile.ZipInfo]

    kind = "zip archive"

    def __len__(self) -> int:
        return len(self.members)

    @property
    def labels(self) -> Sequence[str]:
        """`archive.zip:member`, `archive.zip:member#2` for a repeated name."""
        seen: dict[str, int] = {}
        labels = []
        for info in self.members:
            seen[info.filename] = seen.get(info.filename, 0) + 1
            suffix = f"#{seen[info.filename]}" if seen[info.filename] > 1 else ""
            labels.append(f"{self.archive}:{info.filename}{suffix}")
        return labels

    def local_files(self) -> Sequence[str]:
        return (self.archive,)

    def read_blobs(self, start: int, stop: int, max_pixels: int) -> list[bytes | str]:
        """Each member's bytes, or why it cannot be read: declared larger than the cap (checked before anything
        is inflated; zipfile stops at the declared size), or a damaged entry."""
        max_bytes = _fidrs.max_file_bytes(max_pixels)
        out: list[bytes | str] = []
        with open_regular(self.archive) as f, zipfile.ZipFile(f) as z:
            for info in self.members[start:stop]:
                if info.file_size > max_bytes:
                    out.append(
                        f"zip member of {info.file_size} bytes exceeds the limit of {max_bytes} bytes "
                        "for an image within the pixel limit"
                    )
                    continue
                try:
                    out.append(z.read(info))
                except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                    out.append(f"damaged zip member ({e})")
                except Exception as e:  # noqa: BLE001 - zlib/bz2/lzma errors: a damaged member, not a crash
                    out.append(f"damaged zip member ({type(e).__name__}: {e})")
        return out


def resolve_zip(inputs: Any, allow_stats: bool) -> ZipImages | None:
    if not isinstance(inputs, (str, os.PathLike)):
        return None
    path = os.fspath(inputs)
    if rules.extension(path) not in rules.ZIP_EXTENSIONS or not os.path.exists(path):
        return None
    try:
        with open_regular(path) as f, zipfile.ZipFile(f) as z:
            infos = [info for info in z.infolist() if not info.is_dir() and rules.is_image(info.filename)]
            nested = sorted(info.filename for info in z.infolist() if rules.is_archive(info.filename))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise InvalidInputError(f"{display(path)}: not a readable zip archive ({e})") from None
    if not infos:
        extra = f" (only zip archives, which are not opened: {', '.join(map(display, nested[:3]))})" if nested else ""
        raise EmptyInputError(f"{display(path)}: the zip archive holds no image files{extra}")
    warn_nested_archives(path, [f"{path}:{name}" for name in nested], stacklevel=4)
    # Sorted by name; members of one name keep their order in the archive (sort is stable).
    return ZipImages(path, sorted(infos, key=lambda info: info.filename))
