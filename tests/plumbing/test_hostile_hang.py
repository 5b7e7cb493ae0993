"""Class 2 of the hardening issue: nothing hangs. Non-regular files are refused by name, link cycles end and
count each real file once, Ctrl-C ends a run within a second with exit 130, and the weights download has an
overall deadline and a size cap. The refusals run in process on the tiny test backbone; Ctrl-C is sent to a
`fidrs` process (the Inception keeps its network busy long enough to be interrupted mid-run)."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fidrs
import pytest
from cli_in_process import run_cli_here
from conftest import inception_with, write_images
from fidrs import weights as w
from fidrs.errors import WeightsUnavailableError
from fidrs.sources import resolve as resolve_source


def _tiny_cli_bounded(capsys, checkpoint, *args):
    """The command on the tiny backbone, in process; a hang (the bug these tests look for) ends the test run with
    a traceback after 120 s instead of waiting forever."""
    return run_cli_here(capsys, *args, "--backbone", "tiny", "--weights", checkpoint, deadline_s=120)


def test_fifo_named_png_is_a_named_bad_file_not_a_hang(tmp_path, tiny, capsys):
    folder = write_images(tmp_path / "imgs", 3)
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    out = _tiny_cli_bounded(capsys, tiny[1], "score", str(folder), str(folder))
    assert out.returncode == 2, out.stderr
    assert f"{fifo}: a FIFO, not a regular file" in out.stderr


def test_device_file_linked_as_image_is_refused(tmp_path, tiny, capsys):
    folder = write_images(tmp_path / "imgs", 3)
    (folder / "z.jpg").symlink_to("/dev/zero")
    out = _tiny_cli_bounded(capsys, tiny[1], "score", str(folder), str(folder))
    assert out.returncode == 2
    assert f"{folder / 'z.jpg'}: a device, not a regular file" in out.stderr


def test_symlink_cycles_end_and_each_file_counts_once(tmp_path):
    folder = write_images(tmp_path / "imgs", 3)
    (folder / "self").symlink_to(".")  # self -> .
    sub = folder / "sub"
    write_images(sub, 2, seed=1)
    (sub / "up").symlink_to("..")  # a cycle through the parent
    (folder / "again.png").symlink_to(folder / "00.png")  # a second name for one file
    with pytest.warns(UserWarning, match="counted once"):
        source = resolve_source(str(folder))
    assert len(source) == 5  # 3 + 2 real files, whatever the links


def test_a_list_naming_one_file_twice_counts_it_once(tmp_path):
    folder = write_images(tmp_path / "imgs", 2)
    with pytest.warns(UserWarning, match="counted once"):
        source = resolve_source([str(folder / "00.png"), str(folder / "01.png"), str(folder / "00.png")])
    assert source.paths == [str(folder / "00.png"), str(folder / "01.png")]


@pytest.mark.parametrize("phase", ["decoding", "network"])
def test_ctrl_c_ends_the_run_within_a_second_with_exit_130(tmp_path, weights, phase):
    """Large images keep the decoder busy; many small ones keep the network busy. SIGINT arrives mid-run."""
    if phase == "decoding":
        folder = write_images(tmp_path / "imgs", 40, size=(2000, 2000), ext="bmp")
        extra = ["--batch-size", "40"]
    else:
        folder = write_images(tmp_path / "imgs", 200)
        extra = ["--batch-size", "100"]
    fidrs.stats(str(write_images(tmp_path / "warm", 2)), weights=weights)  # the ONNX graph is built and cached
    proc = subprocess.Popen(
        [sys.executable, "-m", "fidrs.cli", "score", str(folder), str(folder), "--weights", weights, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
    assert err.strip().splitlines()[-1] == "fidrs: interrupted"
    assert "Traceback" not in err


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Sends a byte every 50 ms forever (each read succeeds well within any per-read timeout)."""

    def do_GET(self):  # noqa: N802 - the http.server API
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(2000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class _Huge(_Trickle):
    """Announces nothing and streams far more than the real checkpoint's size, fast."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(4096):
                self.wfile.write(b"\0" * (64 << 10))
        except OSError:
            pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, 10 ms here
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server


def test_download_has_an_overall_deadline(tmp_path):
    server = _serve(_Trickle)
    try:
        start = time.monotonic()
        with pytest.raises(WeightsUnavailableError, match="not finished after 2 s"):
            w.download_weights(
                inception_with(), f"http://127.0.0.1:{server.server_port}/w.pth", tmp_path / "w.pth", deadline_s=2.0
            )
        assert time.monotonic() - start < 6.0
    finally:
        server.shutdown()
    assert list(tmp_path.iterdir()) == [], "the partial download was left behind"


def test_download_has_a_size_cap(tmp_path):
    server = _serve(_Huge)
    try:
        with pytest.raises(WeightsUnavailableError, match="more than 1048576 bytes"):
            w.download_weights(
                inception_with(max_bytes=1 << 20), f"http://127.0.0.1:{server.server_port}/w.pth", tmp_path / "w.pth"
            )
    finally:
        server.shutdown()
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_interrupts_a_download(tmp_path):
    """The CLI downloading from a server that trickles: SIGINT ends it within a second."""
    server = _serve(_Trickle)
    folder = write_images(tmp_path / "imgs", 2)
    env = {
        **os.environ,
        "FIDRS_CACHE": str(tmp_path / "cache"),
        "FIDRS_WEIGHTS": "",
        "FIDRS_WEIGHTS_URL": f"http://127.0.0.1:{server.server_port}/w.pth",
    }
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fidrs.cli", "score", str(folder), str(folder)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(3.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and time.monotonic() - sent < 1.0, err
        assert not [p for p in Path(tmp_path / "cache").iterdir() if p.suffix == ".part"]
    finally:
        server.shutdown()
