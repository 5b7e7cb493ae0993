"""One bounded, verified, atomic HTTP(S) download: what the weights and the published references both need.

The file goes to a `.part` of this process's own beside the destination (two processes downloading at once
each write their own and each rename a complete, verified file), bounded in size (the announced length and the
bytes actually received) and in total time (however steadily bytes trickle in); a transfer that ends before
the length the server announced is an interrupted one. What was received is fsynced, checked against the
expected sha256 (a full hash or a published prefix) and by the caller's own verification, then renamed into
place. A Ctrl-C that ends the CLI removes the part (`_fidrs.track_pending_output`). Redirects are followed
(at most `MAX_REDIRECTS`) only between http(s) URLs and never from https down to http.

The caller names its errors: `unavailable(reason)` and `mismatch(message)` build the exceptions raised, so
each caller keeps its own advice (how to supply the file without a network).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import FidrsError

log = logging.getLogger("fidrs.download")

# A download that has not finished in this many seconds is abandoned, however steadily bytes trickle in.
DEADLINE_S = 600.0
# Seconds one read may wait for the next bytes.
READ_TIMEOUT_S = 30.0
# urllib's own limit is 10; a published file sits behind one or two (a CDN, a release asset).
MAX_REDIRECTS = 5
_CHUNK = 1 << 16


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s), never from https to http, and at most MAX_REDIRECTS times."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old = urllib.parse.urlsplit(req.full_url).scheme.lower()
        new = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, newurl)).scheme.lower()
        if new not in ("http", "https") or (old == "https" and new == "http"):
            raise urllib.error.HTTPError(
                req.full_url, code, f"refused a redirect from {old} to {new}: {newurl[:200]}", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_Redirects())


def sha256_matches(actual: str, expected: str) -> bool:
    """`expected` is a full sha256 or a published prefix of one (pytorch-fid's 8 hex digits)."""
    return actual.startswith(expected.strip().lower())


class _PartFile:
    """A `.part` file unique to this process beside `destination`, removed unless it was renamed."""

    def __init__(self, destination: Path) -> None:
        self.part = destination.with_name(f"{destination.name}.{os.getpid()}.{time.monotonic_ns()}.part")

    def __enter__(self):
        from . import _fidrs

        self.file = open(self.part, "xb")
        _fidrs.track_pending_output(str(self.part), True)  # a Ctrl-C that ends the CLI removes it
        return self.file, self.part

    def __exit__(self, *exc) -> None:
        from . import _fidrs

        self.file.close()
        self.part.unlink(missing_ok=True)
        _fidrs.track_pending_output(str(self.part), False)


def download(
    url: str,
    destination: Path,
    *,
    max_bytes: int,
    unavailable: Callable[[str], FidrsError],
    mismatch: Callable[[str], FidrsError],
    sha256: str | None = None,
    verify: Callable[[Path, str], None] | None = None,
    deadline_s: float = DEADLINE_S,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> str:
    """Download `url` to `destination` and return the file's sha256.

    `sha256`: the expected hash (full or a prefix); a file that differs raises `mismatch(...)` and is deleted.
    `verify(part, sha256)`: the caller's own check of the complete, fsynced file before it is renamed into
    place (a structure check, recording a first-download hash); whatever it raises propagates and the part is
    deleted. Network failures, a size over `max_bytes`, an interrupted transfer and the deadline raise
    `unavailable(reason)`."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, destination)
    start = time.monotonic()
    digest = hashlib.sha256()
    received = 0
    try:
        with _opener().open(url, timeout=read_timeout_s) as response:
            declared_text = response.headers.get("Content-Length")
            declared = int(declared_text) if declared_text is not None and declared_text.isdigit() else None
            if declared is not None and declared > max_bytes:
                raise unavailable(f"the server announces {declared} bytes, over the cap of {max_bytes}")
            with _PartFile(destination) as (out, part):
                while True:
                    if time.monotonic() - start > deadline_s:
                        raise unavailable(f"not finished after {deadline_s:.0f} s")
                    chunk = response.read1(_CHUNK)  # returns what one read delivers: the deadline stays live
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > max_bytes:
                        raise unavailable(f"more than {max_bytes} bytes, over the cap")
                    digest.update(chunk)
                    out.write(chunk)
                if declared is not None and received != declared:
                    raise unavailable(f"the transfer was interrupted after {received} of {declared} bytes")
                actual = digest.hexdigest()
                if sha256 is not None and not sha256_matches(actual, sha256):
                    raise mismatch(
                        f"the file downloaded from {url} has sha256 {actual}, expected "
                        f"{'a hash starting with ' if len(sha256.strip()) < 64 else ''}{sha256.strip().lower()}: "
                        "it is corrupt or not the published file; it was deleted"
                    )
                out.flush()
                os.fsync(out.fileno())
                if verify is not None:
                    verify(part, actual)
                os.replace(part, destination)
    except FidrsError:
        raise  # the caller's own errors (a size over the cap, a mismatch, its verification)
    except urllib.error.HTTPError as e:  # 404, 500, a refused redirect
        raise unavailable(f"HTTP {e.code}: {e.reason}") from None
    except urllib.error.URLError as e:  # refused, unknown host, no route
        raise unavailable(str(e.reason)) from None
    except (http.client.HTTPException, OSError) as e:
        # HTTPException: a chunked transfer cut short (IncompleteRead), a garbled status line; OSError: a read
        # timeout, a reset connection, a full disk.
        raise unavailable(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
    return actual


__all__ = ["DEADLINE_S", "MAX_REDIRECTS", "READ_TIMEOUT_S", "download", "sha256_matches"]
