"""What a CI run of `fidrs score` leaves besides its exit code: progress bars on stderr only (stdout stays one
JSON object), the GitHub Actions job summary, and `--jsonl` records."""

from __future__ import annotations

import json
import os

from conftest import run_cli, write_images


def test_forced_progress_bar_never_touches_json_stdout_and_records_are_appended(weights, tmp_path):
    a, b = write_images(tmp_path / "a", 4, seed=1), write_images(tmp_path / "b", 5, seed=2)
    summary, log = tmp_path / "summary.md", tmp_path / "fids.jsonl"
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    args = ["score", str(a), str(b), "--weights", weights, "--json", "--progress", "--jsonl", str(log)]
    first = run_cli(*args, "--max-fid", "1e9", env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)  # the whole of stdout is one JSON object
    assert first.stdout.count("\n") == 1
    assert f"fidrs {a}" in first.stderr and "4/4" in first.stderr and "5/5" in first.stderr  # one bar per set
    assert "img/s" in first.stderr or "s/img" in first.stderr  # tqdm's rate
    second = run_cli(*args, "--max-fid", "0", env=env)
    assert second.returncode == 1  # above the gate
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert records[0]["fid"] == result["fid"] and records[0]["passed"] is True and records[1]["passed"] is False
    assert records[0]["a"] == str(a) and records[0]["timestamp"] < records[1]["timestamp"]
    text = summary.read_text()
    assert text.count("### fidrs score") == 2
    assert "| metric | FID |" in text and "| result | ✅ pass |" in text and "| result | ❌ fail |" in text
    assert f"| value | {result['fid']:.6g} |" in text and "| n | 4 / 5 |" in text
    assert "| backbone | inception |" in text and "| mode | pytorch-fid |" in text


def test_no_progress_without_a_terminal_unless_asked(weights, tmp_path):
    a, b = write_images(tmp_path / "a", 3, seed=1), write_images(tmp_path / "b", 3, seed=2)
    out = run_cli("score", str(a), str(b), "--weights", weights, "--json")
    assert out.returncode == 0 and "img" not in out.stderr


def test_a_jsonl_that_is_a_fifo_is_refused_not_waited_on(weights, tmp_path):
    a, b = write_images(tmp_path / "a", 3, seed=1), write_images(tmp_path / "b", 3, seed=2)
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    out = run_cli("score", str(a), str(b), "--weights", weights, "--jsonl", str(fifo), timeout=120)
    assert out.returncode == 2 and str(fifo) in out.stderr and "Traceback" not in out.stderr
