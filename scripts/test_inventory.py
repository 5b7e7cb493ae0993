"""Compare two test collections (`pytest --collect-only -q` outputs, one node ID a line): every test of the first
must still exist in the second, wherever its module now lives. Prints, in Markdown, the conformance checks
(the tests of tests/conformance, and every other test that reads what a reference tool computed) side by side,
before and after, and exits 1 if any test of the first collection is gone.

    .venv/bin/python -m pytest --collect-only -q -p no:cacheprovider | grep :: > after.txt
    python scripts/test_inventory.py before.txt after.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# Tests outside tests/conformance that compare with what a reference tool computes or computed (Pillow's pixels
# and verdicts, torch's resize, torch-fidelity's, clean-fid's, dgm-eval's, EDM2's, CMMD's, the official
# checkpoints' layouts and forward passes): by function name.
REFERENCE_CHECKS = re.compile(
    r"pillow|torch_bilinear|torch_fidelity|pytorch_fid|dgm_eval|clean_fid|cmmd|edm2s|official|float64_forward|"
    r"host_paths|bit_identical|scipy|mpmath"
)


def node_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if "::" in line]


# Tests replaced by a stronger one under another name, each with why: the old key → the new one.
REPLACED = {
    # The GPU check's center-crop stand-in for CMMD's square crop is gone (the square-crop fit exists): its CLIP
    # rows use the backbone's cmmd mode, asserted equal to the official pixels on the check's images and on a wide
    # image where a centre crop would differ.
    "test_gpu_check.py::test_the_preprocessing_stand_in_gives_the_official_cmmd_pixels_on_the_checks_images": (
        "test_gpu_check.py::test_the_clip_rows_use_the_cmmd_mode_with_its_square_crop_fit"
    ),
    # The same four cases, renumbered: two num_images cases (over 2^53) were inserted before them, and pytest's
    # ids count the cases (replaceN).
    **{
        f"test_references_readers.py::test_edm2_pickles_of_another_layout_are_refused[replace{old}-{case}]": (
            f"test_references_readers.py::test_edm2_pickles_of_another_layout_are_refused[replace{old + 2}-{case}]"
        )
        for old, case in (
            (3, "'fid' is not a dict of mu and sigma"),
            (4, "'fid' is not a dict of mu and sigma"),
            (5, "\\\\[fid\\\\]: mu \\\\(3,\\\\) and sigma \\\\(2, 2\\\\) do not fit"),
            (6, "\\\\[fd_dinov2\\\\]: mu is str"),
        )
    },
}


def key(node_id: str) -> str:
    """The test's identity wherever its module lives: module file name, function and parameters (a replaced test:
    its replacement's)."""
    module, _, rest = node_id.partition("::")
    name = f"{Path(module).name}::{rest}"
    return REPLACED.get(name, name)


def is_conformance(node_id: str) -> bool:
    module, _, rest = node_id.partition("::")
    return "/conformance/" in f"/{module}" or bool(REFERENCE_CHECKS.search(rest.lower()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before, after = node_ids(args.before), node_ids(args.after)
    now = {key(n): n for n in after}
    gone = [n for n in before if key(n) not in now]
    checks = [n for n in before if is_conformance(n) or (key(n) in now and is_conformance(now[key(n)]))]
    print(f"{len(before)} tests before, {len(after)} after; {len(gone)} of the first gone.\n")
    print(f"Conformance checks ({len(checks)}), before → after:\n")
    print("| before | after |")
    print("|---|---|")
    for n in checks:
        print(f"| `{n}` | `{now.get(key(n), 'GONE')}` |")
    added = [n for n in after if is_conformance(n) and key(n) not in {key(b) for b in before}]
    if added:
        print(f"\nConformance checks added since ({len(added)}):\n")
        for n in added:
            print(f"- `{n}`")
    if gone:
        print("\nGone:", *gone, sep="\n- ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
