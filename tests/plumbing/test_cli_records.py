"""What a CI run of `fidrs score` leaves besides its exit code: progress bars on stderr only (stdout stays one
JSON object), the GitHub Actions job summary, and `--jsonl` records. On the tiny test backbone
(tests/tiny_backbone.py), the CLI in process."""

from __future__ import annotations

import json
import os

import pytest
from cli_in_process import run_cli_here
from conftest import write_images


@pytest.fixture()
def cli(tiny, capsys):
    """`cli(*args)`: the command on the tiny backbone, in process."""
    _, checkpoint = tiny
    return lambda *args, **kw: run_cli_here(capsys, *args, "--backbone", "tiny", "--weights", checkpoint, **kw)


def test_forced_progress_bar_never_touches_json_stdout_and_records_are_appended(cli, tmp_path, monkeypatch):
    a, b = write_images(tmp_path / "a", 4, seed=1), write_images(tmp_path / "b", 5, seed=2)
    summary, log = tmp_path / "summary.md", tmp_path / "fids.jsonl"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    args = ["score", str(a), str(b), "--json", "--progress", "--jsonl", str(log)]
    first = cli(*args, "--max-fid", "1e9")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)  # the whole of stdout is one JSON object
    assert first.stdout.count("\n") == 1
    assert f"fidrs {a}" in first.stderr and "4/4" in first.stderr and "5/5" in first.stderr  # one bar per set
    assert "img/s" in first.stderr or "s/img" in first.stderr  # tqdm's rate
    second = cli(*args, "--max-fid", "0")
    assert second.returncode == 1  # above the gate
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert records[0]["fid"] == result["fid"] and records[0]["passed"] is True and records[1]["passed"] is False
    assert records[0]["a"] == str(a) and records[0]["timestamp"] < records[1]["timestamp"]
    text = summary.read_text()
    assert text.count("### fidrs score") == 2
    assert "| metric | FD (tiny) |" in text and "| result | ✅ pass |" in text and "| result | ❌ fail |" in text
    assert f"| value | {result['fid']:.6g} |" in text and "| n | 4 / 5 |" in text
    assert "| backbone | tiny |" in text and "| mode | plain |" in text


def test_no_progress_without_a_terminal_unless_asked(cli, tmp_path):
    a, b = write_images(tmp_path / "a", 3, seed=1), write_images(tmp_path / "b", 3, seed=2)
    out = cli("score", str(a), str(b), "--json")  # pytest's captured stderr is no terminal
    assert out.returncode == 0 and "img" not in out.stderr


def test_a_jsonl_that_is_a_fifo_is_refused_not_waited_on(cli, tmp_path):
    a, b = write_images(tmp_path / "a", 3, seed=1), write_images(tmp_path / "b", 3, seed=2)
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    out = cli("score", str(a), str(b), "--jsonl", str(fifo), deadline_s=120)  # a wait on the FIFO: ended at 120 s
    assert out.returncode == 2 and str(fifo) in out.stderr and "Traceback" not in out.stderr
