"""Instructions per decoded image, by format, for one build of fidrs' decoders: run under callgrind twice
(each image decoded three times, and once) and subtract, which removes every first-call cost; only
instructions inside the extension's own object (fidrs and the decoders linked into it) are counted.
Repeatable (PYTHONHASHSEED=0) whatever else runs on the machine.

Usage: python bench/callgrind_decode.py BUILD.so [--images 20]
    e.g. python bench/callgrind_decode.py /work/main/python/fidrs/_fidrs.abi3.so   (before)
         python bench/callgrind_decode.py python/fidrs/_fidrs.abi3.so             (after)
Needs valgrind. Prints a table: format, instructions per image.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_decode_ab import encodings

RUNNER = """
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.ExtensionFileLoader("b._fidrs", sys.argv[1])
spec = importlib.util.spec_from_loader("b._fidrs", loader)
m = importlib.util.module_from_spec(spec); loader.exec_module(m)
paths = sys.argv[3:]
for p in paths * int(sys.argv[2]):
    m.decode_image(p)
"""


def instructions(build: str, paths: list[str], repeat: int) -> int:
    """Instructions executed inside the extension (its code and the C libraries linked into it)."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", RUNNER]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run([*cmd, build, str(repeat), *paths], check=True, capture_output=True, env=env)
        report = subprocess.run(
            ["callgrind_annotate", "--threshold=100", str(out)], check=True, capture_output=True, text=True
        ).stdout
        total = 0
        for line in report.splitlines():
            m = re.match(r"\s*([\d,]+) \([^)]*\)\s+.*\[(.*)\]$", line)
            if m and Path(m.group(2)).name == Path(build).name:
                total += int(m.group(1).replace(",", ""))
        return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("build")
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        sets = encodings(Path(d), args.images)
        print(f"{'format':>10} {'instructions/image':>20}")
        for fmt, paths in sets.items():
            per_image = (instructions(args.build, paths, 3) - instructions(args.build, paths, 1)) / (2 * len(paths))
            print(f"{fmt:>10} {per_image:20,.0f}")


if __name__ == "__main__":
    main()
