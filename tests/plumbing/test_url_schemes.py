"""Issue 29 item 14: every URL that names local files is read by the hardened local reader (a FIFO or a device is
refused by name, never opened to block or read for ever), chained URLs and unknown schemes are refused by name,
and a remote file whose size the store does not say is read at most up to the cap. Each check runs in a fresh
interpreter with a timeout, so that a regression is a failure, not a hung suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import fidrs
import pytest
from conftest import write_images
from fidrs import sources

_FAILURES = """
import json, sys
import fidrs
print(json.dumps(fidrs.Evaluator().decode_failures(sys.argv[1])))
"""


def _failures(url: str) -> list:
    out = subprocess.run([sys.executable, "-c", _FAILURES, url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("scheme", ["file", "local"])
def test_a_fifo_named_by_a_local_url_is_refused_by_name(tmp_path, scheme):
    folder = write_images(tmp_path / "imgs", 2)
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    failures = dict(_failures(f"{scheme}://{folder}"))
    assert failures[str(folder / "pipe.png")] == "a FIFO, not a regular file"
    assert "not a regular file" in failures[str(folder / "zero.png")]
    assert len(failures) == 2  # the two real images decode
    assert sources.resolve(f"{scheme}://{folder}/00.png").labels == [str(folder / "00.png")]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("tar://etc/passwd::file://{tar}", "chained URLs"),
        ("zip://00.png::file://{zip}", "chained URLs"),
        ("simplecache::file://{png}", "chained URLs"),
        ("filecache::memory://x.png", "chained URLs"),
        ("ftp://example.invalid/x.png", "scheme 'ftp' are not read"),
        ("sftp://example.invalid/x.png", "scheme 'sftp' are not read"),
        ("reference://x.png", "scheme 'reference' are not read"),
        ("dir://x.png", "scheme 'dir' are not read"),
        ("local://otherhost/etc/passwd", "must name a local path"),
    ],
)
def test_chained_urls_and_unknown_schemes_are_refused_by_name(tmp_path, url, reason):
    png = write_images(tmp_path / "imgs", 1) / "00.png"
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with tarfile.open(tmp_path / "a.tar", "w") as t:
        t.add(passwd, arcname="etc/passwd")
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.write(png, "00.png")
    text = url.format(tar=tmp_path / "a.tar", zip=tmp_path / "a.zip", png=png)
    for call in (lambda: sources.resolve(text), lambda: sources.resolve([text]), lambda: fidrs.Evaluator().stats(text)):
        with pytest.raises(fidrs.InvalidInputError, match=reason) as info:
            call()
        assert "Traceback" not in str(info.value)


def test_a_remote_file_of_unknown_size_is_read_up_to_the_cap_only(monkeypatch):
    import fsspec
    from fidrs.sources.url import read_urls

    fs = fsspec.filesystem("memory")
    fs.pipe("/fidrs-size/big.png", b"x" * 1000)
    fs.pipe("/fidrs-size/small.png", b"y" * 10)
    monkeypatch.setattr(type(fs), "size", lambda self, path: None)  # a store that does not say
    monkeypatch.setattr(type(fs), "sizes", lambda self, paths: [None] * len(paths))
    try:
        big, small = read_urls(["memory:///fidrs-size/big.png", "memory:///fidrs-size/small.png"], max_bytes=100)
    finally:
        fs.rm("/fidrs-size", recursive=True)
    assert isinstance(big, str) and "over the limit of 100 bytes" in big
    assert small == b"y" * 10


def test_the_cli_refuses_a_chained_url_with_exit_2(tmp_path):
    from conftest import run_cli

    out = run_cli("stats", f"tar://etc/passwd::file://{tmp_path}/a.tar", "-o", str(tmp_path / "x.npz"), timeout=60)
    assert out.returncode == 2 and "chained URLs" in out.stderr and "Traceback" not in out.stderr
