"""The package before and after a change, in one run: `fidrs report` over the shared photos' classes and
`fidrs score` of two classes end to end (CLI process wall time: import, weights, graph, decode, network,
statistics), interleaved A, B, A, B… so that load on a shared machine falls on both alike. The feature cache is
off; both use the same compiled core (this tree's `_fidrs` extension), so only the Python package differs.

When the compiled core changed too, build REV's wheel and give its install folder instead: `git worktree add
/tmp/before REV && cd /tmp/before && maturin build --release --out dist && pip install --no-deps --target
/tmp/before-site dist/*.whl`, then `--before-site /tmp/before-site` (both sides then run their own core).

Usage: python bench/bench_before_after.py [--before REV | --before-site DIR] [--classes N] [--images N] [--repeats N]
  --before REV   the git revision of the "before" package (default 190daa0, the base of the refactor), run
                 with this tree's compiled extension
  --before-site DIR  a folder where the "before" fidrs is installed whole (its own extension)
  --classes N    training classes in the report (default: all 10)
  --images N     images per class (default: all; small values validate the script)
Prints a table: median seconds of each, after/before.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, WEIGHTS, machine

ROOT = Path(__file__).resolve().parents[1]


def installed() -> Path:
    """The folder holding the fidrs this interpreter imports (the venv's install of this tree)."""
    import fidrs

    return Path(fidrs.__file__).resolve().parents[1]


def package_at(revision: str, into: Path) -> Path:
    """`python/fidrs` of `revision`, with the installed compiled extension copied in."""
    into.mkdir(parents=True)
    command = ["git", "-C", str(ROOT), "archive", revision, "python/fidrs"]
    archive = subprocess.run(command, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    for extension in (installed() / "fidrs").glob("_fidrs*.so"):
        shutil.copy(extension, into / "python" / "fidrs" / extension.name)
    return into / "python"


def dataset(root: Path, classes: int, images: int | None) -> tuple[Path, list[str]]:
    """The first `classes` training classes, `images` photos each (symlinks: fidrs reads the files they name)."""
    names = sorted(p.name for p in (DATA / "training").iterdir() if p.is_dir())[:classes]
    for name in names:
        (root / name).mkdir(parents=True)
        for photo in sorted((DATA / "training" / name).glob("*.jpg"))[:images]:
            (root / name / photo.name).symlink_to(photo)
    return root, names


def timed(python_path: Path, args: list[str], cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(python_path), "FIDRS_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "fidrs.cli", *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"fidrs {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="190daa0")
    parser.add_argument("--before-site", type=Path, default=None)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fidrs-before-after-"))
    try:
        before = args.before_site or package_at(args.before, work / "before")
        trees = {"before": before, "after": installed()}
        data, names = dataset(work / "data", args.classes, args.images)
        cache = work / "cache"  # shared: the ONNX graph is built once per tree, then both read it warm
        commands = {
            "report": ["report", str(data), "--reference", names[0], "-o", str(work / "out")]
            + ["--weights", str(WEIGHTS)],
            "score": ["score", str(data / names[0]), str(data / names[-1]), "--weights", str(WEIGHTS), "--json"],
        }
        for tree in trees.values():  # warm: each tree builds (or finds) its graph before anything is timed
            timed(tree, commands["score"] + ["--no-cache"], cache)
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for command, argv in commands.items():
                for name, tree in trees.items():
                    times.setdefault((command, name), []).append(timed(tree, argv + ["--no-cache"], cache))
        images = sum(len(list((data / n).iterdir())) for n in names)
        label = f"{args.before_site} (its own core)" if args.before_site else f"{args.before} (this tree's core)"
        print(f"machine: {machine()}; {len(names)} classes, {images} images; before = {label}, after = this tree")
        print(f"{'command':<8} {'before s':>10} {'after s':>10} {'after/before':>13}")
        for command in commands:
            before = statistics.median(times[(command, "before")])
            after = statistics.median(times[(command, "after")])
            print(f"{command:<8} {before:>10.2f} {after:>10.2f} {after / before:>13.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
