"""fidrs.download: the bounded, verified, atomic download, against servers on 127.0.0.1 that misbehave on purpose."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from fidrs.download import _Redirects, download, sha256_matches
from fidrs.errors import FidrsError

BODY = bytes(range(256)) * 64  # 16 KiB
SHA = hashlib.sha256(BODY).hexdigest()


class Unavailable(FidrsError):
    pass


class Mismatch(FidrsError):
    pass


def _get(url, dest, **kwargs):
    kwargs.setdefault("max_bytes", 1 << 20)
    return download(url, dest, unavailable=Unavailable, mismatch=Mismatch, **kwargs)


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good: BODY with its length; /redirect → /good; /loop → /loop; /to-file → file://; /short: announces
    BODY's length, sends half and closes; /trickle: a byte every 50 ms; /huge: 64 MiB without a length."""

    def do_GET(self):  # noqa: N802 - the http.server API
        path = self.path
        try:
            if path == "/good":
                self._send(BODY)
            elif path in ("/redirect", "/loop", "/to-file"):
                target = {"/redirect": "/good", "/loop": "/loop", "/to-file": "file:///etc/passwd"}[path]
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/short":
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[: len(BODY) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif path == "/trickle":
                self.send_response(200)
                self.end_headers()
                for _ in range(2000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif path == "/huge":
                self.send_response(200)
                self.end_headers()
                for _ in range(1024):
                    self.wfile.write(b"\0" * (64 << 10))
            else:
                self.send_error(404)
        except OSError:
            pass  # the client gave up on purpose

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda *a: None
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, 10 ms here
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_good_download_is_verified_and_renamed_into_place(server, tmp_path):
    dest = tmp_path / "f.bin"
    assert _get(f"{server}/good", dest, sha256=SHA) == SHA
    assert dest.read_bytes() == BODY
    assert _leftovers(tmp_path) == ["f.bin"]  # no .part left


def test_a_published_prefix_is_enough(server, tmp_path):
    assert _get(f"{server}/good", tmp_path / "f.bin", sha256=SHA[:8].upper()) == SHA
    assert sha256_matches(SHA, SHA[:8]) and not sha256_matches(SHA, "0" * 8)


def test_a_hash_mismatch_deletes_the_file(server, tmp_path):
    with pytest.raises(Mismatch, match=f"has sha256 {SHA}, expected {'0' * 64}"):
        _get(f"{server}/good", tmp_path / "f.bin", sha256="0" * 64)
    assert _leftovers(tmp_path) == []


def test_the_verify_hook_sees_the_complete_file_and_can_refuse_it(server, tmp_path):
    seen = []

    def verify(part, sha):
        seen.append((part.read_bytes() == BODY, sha, part.name.endswith(".part")))
        raise Mismatch("not the right structure")

    with pytest.raises(Mismatch, match="structure"):
        _get(f"{server}/good", tmp_path / "f.bin", verify=verify)
    assert seen == [(True, SHA, True)]
    assert _leftovers(tmp_path) == []


def test_a_redirect_is_followed(server, tmp_path):
    assert _get(f"{server}/redirect", tmp_path / "f.bin", sha256=SHA) == SHA


@pytest.mark.parametrize(
    ("path", "reason"), [("/loop", "HTTP 302"), ("/to-file", "file:///etc/passwd' is not allowed")]
)
def test_redirect_loops_and_redirects_off_http_are_refused(server, tmp_path, path, reason):
    with pytest.raises(Unavailable, match=reason):
        _get(f"{server}{path}", tmp_path / "f.bin")
    assert _leftovers(tmp_path) == []


def test_a_redirect_from_https_down_to_http_is_refused():
    # No TLS server here: the redirect handler is asked directly, as urllib asks it for a 302 from an https URL.
    handler = _Redirects()
    request = urllib.request.Request("https://example.org/ref.npz")
    with pytest.raises(urllib.error.HTTPError, match="refused a redirect from https to http"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://example.org/ref.npz")
    assert handler.redirect_request(request, None, 302, "Found", {}, "https://mirror.example.org/r.npz") is not None


def test_a_size_over_the_cap_is_abandoned_announced_or_not(server, tmp_path):
    with pytest.raises(Unavailable, match=f"announces {len(BODY)} bytes, over the cap of 1000"):
        _get(f"{server}/good", tmp_path / "f.bin", max_bytes=1000)
    with pytest.raises(Unavailable, match="more than 1048576 bytes"):
        _get(f"{server}/huge", tmp_path / "f.bin")  # streams 64 MiB without a length
    assert _leftovers(tmp_path) == []


def test_an_interrupted_transfer_is_not_a_file(server, tmp_path):
    with pytest.raises(Unavailable, match=f"interrupted after {len(BODY) // 2} of {len(BODY)} bytes"):
        _get(f"{server}/short", tmp_path / "f.bin")
    assert _leftovers(tmp_path) == []


def test_the_deadline_ends_a_trickle(server, tmp_path):
    start = time.monotonic()
    with pytest.raises(Unavailable, match="not finished after 1 s"):
        _get(f"{server}/trickle", tmp_path / "f.bin", deadline_s=1.0)
    # 1 s deadline + at most one read (a byte every 50 ms) + connection set-up: 3 s is a generous bound.
    assert time.monotonic() - start < 3.0
    assert _leftovers(tmp_path) == []


def test_offline_and_missing_files_are_unavailable(server, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(Unavailable, match="refused"):
        _get(f"http://127.0.0.1:{port}/f", tmp_path / "f.bin")
    with pytest.raises(Unavailable, match="HTTP 404"):
        _get(f"{server}/missing", tmp_path / "f.bin")
    assert _leftovers(tmp_path) == []
