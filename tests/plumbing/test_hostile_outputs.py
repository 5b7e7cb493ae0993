"""Class 5 of the hardening issue: nothing is lost. Outputs are written to a temporary file and renamed, so a
failed write leaves the previous file intact; concurrent weight downloads never rename a corrupt file."""

from __future__ import annotations

import hashlib
import http.server
import resource
import threading

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from conftest import inception_with, run_cli
from fidrs import weights as w
from fidrs.backbones import get as _backbone

INCEPTION_FILENAME = _backbone("inception").weights.filename


def _stats_file(path, d: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    moments = fidrs.Moments(d)
    moments.update(rng.standard_normal((3 * d, d)).astype(np.float32))
    fidrs.Stats.from_moments(moments, "pytorch-fid", "0" * 64, None).save(path)  # d-wide: of no backbone fidrs has
    return str(path)


def _limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("command", ["merge", "one-input"])
def test_failed_write_leaves_the_previous_file_intact(tmp_path, command):
    a, b = _stats_file(tmp_path / "a.npz", 64, 0), _stats_file(tmp_path / "b.npz", 64, 1)
    target = tmp_path / "out.npz"
    target.write_bytes(b"previous contents")
    args = ["merge", a, b, "-o", str(target)] if command == "merge" else ["merge", a, "-o", str(target)]
    out = run_cli(*args, preexec_fn=_limit_file_size(16 << 10))  # ulimit -f 16: the 100 KB output cannot fit
    assert out.returncode == 2, out.stderr
    assert str(target) in out.stderr and "File too large" in out.stderr
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "out.npz"]  # no temporary left


def test_output_in_a_missing_folder_is_exit_2(tmp_path, capsys):
    a = _stats_file(tmp_path / "a.npz", 8, 0)
    out = run_cli_here(capsys, "merge", a, "-o", str(tmp_path / "missing" / "out.npz"))
    assert out.returncode == 2 and f"the folder {tmp_path / 'missing'} does not exist" in out.stderr


def test_concurrent_downloads_each_rename_a_verified_file(tmp_path):
    # Any bytes do: a published sha256 prefix is all that is checked. 16 MiB sent in 1 MiB writes keeps the three
    # downloads overlapping (each is 16 writes long), as the real checkpoint's 95 MB did.
    payload = np.random.default_rng(0).integers(0, 256, 16 << 20, dtype=np.uint8).tobytes()
    digest = hashlib.sha256(payload).hexdigest()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            for i in range(0, len(payload), 1 << 20):
                self.wfile.write(payload[i : i + (1 << 20)])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, 10 ms here
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    destination = tmp_path / INCEPTION_FILENAME
    errors = []

    def download():
        try:
            w.download_weights(
                inception_with(sha256=digest[:8], max_bytes=len(payload)),
                f"http://127.0.0.1:{server.server_port}/w.pth",
                destination,
            )
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    try:
        threads = [threading.Thread(target=download) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
    assert errors == []
    assert hashlib.sha256(destination.read_bytes()).hexdigest() == digest
    assert [p.name for p in tmp_path.iterdir()] == [INCEPTION_FILENAME]  # no .part left
