"""Print fidrs' requirements from pyproject.toml, one per line: the dependencies and those of the extras named.

scripts/setup.sh installs them while the extension builds. Exits 1 on Python < 3.11 (no tomllib), where setup
installs them after the build instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("tomllib needs Python 3.11")


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [name for name in extras if name not in optional]
    if unknown:
        sys.exit(f"no such extra in pyproject.toml: {', '.join(unknown)}")
    return [*project["dependencies"], *(req for name in extras for req in optional[name])]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
