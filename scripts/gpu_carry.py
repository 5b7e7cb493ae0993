"""Carry wheels to the GPU machine in pieces that fit one device call each, and put them back together there.

Here (`scripts/gpu_carry.sh` calls `pack`): the wheels are laid out in git-ignored folders `.gpu1`, `.gpu2`, …,
each at most `--capacity-mib` (one call carries one folder beside the working tree, 64 MiB in all); the small
wheels come first and whole, the large runtime wheel is cut into chunks that fill the rest. Every folder holds
the same MANIFEST.json (each chunk's and each wheel's size and sha256) and the calls to make are printed.

There (`scripts/gpu_check.sh` calls `receive`): the chunks present in any carry folder are checked against the
manifest, every wheel whose chunks are all here is reassembled (`cat`, in order), its sha256 checked, and
installed with `pip install --no-index --no-deps --target SITE` (or unpacked, where that Python has no pip);
`complete` says whether every wheel is installed. Standard library only (Python ≥ 3.9).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

MANIFEST = "MANIFEST.json"
CALL_MIB = 64  # what one device call carries: the working tree and the named folders together
MARGIN_MIB = 1.5  # for the manifest, and for files the tree gains before the calls are made
CHUNK = 1 << 20
RECEIVE_TIMEOUT_S = 120  # a receive call: sha256 of ≤ 60 MiB, at most one pip install (the small wheels: ~10 s)
FINAL_MARGIN_S = 90  # the last call, beyond the check's budget: the runtime wheel's reassembly and install
# (~250 MiB: ~20 s), the check's start, a child's grace period, the report
RERUN_BUDGET_S = 200


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_bytes(root: Path) -> int:
    """What every call carries anyway: tracked files and untracked files git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    total = 0
    for name in filter(None, listed.split(b"\0")):
        path = root / os.fsdecode(name)
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def layout(sizes: list[tuple[str, int]], capacity: int) -> list[list[dict]]:
    """Folders of chunks: each wheel in order, cut where a folder is full. `sizes`: (wheel name, bytes)."""
    folders: list[list[dict]] = [[]]
    space = capacity
    for name, size in sizes:
        offset = 0
        while offset < size:
            if space == 0:
                folders.append([])
                space = capacity
            take = min(size - offset, space)
            folders[-1].append({"wheel": name, "offset": offset, "bytes": take})
            offset += take
            space -= take
    return folders


def pack(root: Path, small: list[Path], runtime: Path, capacity: int, python_tag: str) -> dict:
    for old in root.glob(".gpu[0-9]*"):
        shutil.rmtree(old)
    wheels = [*small, runtime]
    plan = layout([(w.name, w.stat().st_size) for w in wheels], capacity)
    by_name = {w.name: w for w in wheels}
    manifest: dict = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(root),
        "python_tag": python_tag,
        "runtime": runtime.name,
        "folders": [f".gpu{i + 1}" for i in range(len(plan))],
        "wheels": {w.name: {"bytes": w.stat().st_size, "sha256": sha256(w), "chunks": []} for w in wheels},
    }
    for i, chunks in enumerate(plan):
        folder = root / f".gpu{i + 1}"
        folder.mkdir()
        for chunk in chunks:
            whole = chunk["offset"] == 0 and chunk["bytes"] == manifest["wheels"][chunk["wheel"]]["bytes"]
            name = chunk["wheel"] if whole else f"{chunk['wheel']}.{chunk['offset']:012d}"
            with open(by_name[chunk["wheel"]], "rb") as src, open(folder / name, "wb") as dst:
                src.seek(chunk["offset"])
                left = chunk["bytes"]
                while left:
                    block = src.read(min(CHUNK, left))
                    dst.write(block)
                    left -= len(block)
            entry = {"folder": folder.name, "file": name, "bytes": chunk["bytes"], "sha256": sha256(folder / name)}
            manifest["wheels"][chunk["wheel"]]["chunks"].append(entry)
    text = json.dumps(manifest, indent=1) + "\n"
    for folder in manifest["folders"]:
        (root / folder / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def _commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+uncommitted" if dirty else "")


def calls(manifest: dict, budget_s: int, final_timeout_s: int) -> str:
    """The device calls, in order, for the lead to paste."""
    folders = manifest["folders"]
    lines = [
        f"{len(folders)} device calls, back to back (a machine idle for ~30 s is released and its copies lost):",
        "",
    ]
    for i, folder in enumerate(folders, 1):
        size = sum(c["bytes"] for w in manifest["wheels"].values() for c in w["chunks"] if c["folder"] == folder)
        last = i == len(folders)
        command = f"bash scripts/gpu_check.sh --budget-s {budget_s}" if last else "bash scripts/gpu_check.sh --receive"
        what = "reassemble + install the runtime, then the check" if last else "receive (verify, install what is whole)"
        timeout = final_timeout_s if last else RECEIVE_TIMEOUT_S
        lines += [
            f"call {i}/{len(folders)} — {what}; carries {size / 2**20:.1f} MiB",
            f'  run(carry=["{folder}"], timeout_s={timeout}, command="{command}")',
        ]
    rerun = f"bash scripts/gpu_check.sh --budget-s {RERUN_BUDGET_S} --only NETWORKS"
    lines += [
        "",
        f"Device time: the machine's start, then ~10-20 s per receive call, then at most {final_timeout_s} s.",
        "A rerun while the machine is still warm needs no carry (the installed wheels stay in .gpu-site):",
        f'  run(timeout_s={RERUN_BUDGET_S + FINAL_MARGIN_S}, command="{rerun}")',
        "  (NETWORKS: comma-separated, of inception, dinov2-vitl14, clip-vitl14-336)",
        "Then give_back(). The report is in the files the last call returned: gpu-check.md, gpu-check.json, logs/.",
    ]
    return "\n".join(lines)


# --- the GPU machine's side --------------------------------------------------------------------------------


def _manifest(root: Path) -> dict | None:
    found = sorted(root.glob(f".gpu[0-9]*/{MANIFEST}"))
    if not found:
        return None
    manifests = {p.read_text(encoding="utf-8") for p in found}
    if len(manifests) > 1:
        raise SystemExit(
            "the carry folders come from different gpu_carry.sh runs (their MANIFEST.json differ): "
            "rerun gpu_carry.sh here and carry all of its folders"
        )
    return json.loads(manifests.pop())


def receive(root: Path, site: Path, stage: Path, python: str) -> int:
    manifest = _manifest(root)
    if manifest is None:
        print("no carry folder (.gpu1 …) here: the first call must carry .gpu1", file=sys.stderr)
        return 3
    installed = _installed(site)
    have, missing, whole = [], [], []
    for name, wheel in manifest["wheels"].items():
        if wheel["sha256"] in installed:
            have.append(name)
            continue
        chunks = [root / c["folder"] / c["file"] for c in wheel["chunks"]]
        for chunk, path in zip(wheel["chunks"], chunks):  # every chunk as soon as it is here
            if path.is_file() and (path.stat().st_size != chunk["bytes"] or sha256(path) != chunk["sha256"]):
                print(f"{path}: damaged in transfer (size or sha256 differ from the manifest)", file=sys.stderr)
                return 4
        absent = sorted({c["folder"] for c, path in zip(wheel["chunks"], chunks) if not path.is_file()})
        if absent:
            missing.append(f"{name} (waiting for {', '.join(absent)})")
            continue
        stage.mkdir(parents=True, exist_ok=True)
        target = stage / name
        with open(target, "wb") as out:  # cat, in order
            for path in chunks:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out, CHUNK)
        if sha256(target) != wheel["sha256"]:
            print(f"{name}: the reassembled wheel's sha256 differs from the manifest", file=sys.stderr)
            return 4
        whole.append((target, wheel["sha256"]))
    if whole:
        try:
            install([target for target, _ in whole], site, python)  # one pip run for all of them
        except subprocess.CalledProcessError as e:
            print(
                f"installing {', '.join(t.name for t, _ in whole)} failed ({e}); a wheel pip calls 'not supported'"
                " needs a newer glibc or another Python than this machine has (env.txt says which it has)",
                file=sys.stderr,
            )
            return 5
        for target, digest in whole:
            _mark_installed(site, digest, target.name)
            have.append(target.name)
            target.unlink()
    here = {p.parent.name for p in root.glob(f".gpu[0-9]*/{MANIFEST}")}
    order = manifest["folders"]
    print(
        f"carry folders here: {', '.join(f for f in order if f in here)} of {len(order)}; commit {manifest['commit']}"
    )
    last = max(order.index(f) for f in here)
    done = _installed(site)
    lost = [f for f in order[:last] if f not in here and not _folder_installed(manifest, f, done)]
    if lost:
        print(
            f"WARNING: {', '.join(lost)} missing although a later folder is here: the machine was released since "
            "they were carried; start again from call 1"
        )
    print(f"installed in {site}: {len(have)} of {len(manifest['wheels'])} wheels")
    for line in missing:
        print(f"  not yet: {line}")
    return 0


def _folder_installed(manifest: dict, folder: str, installed: set[str]) -> bool:
    """Whether every wheel with a chunk in `folder` is installed already (the folder is then not needed)."""
    wheels = [w for w in manifest["wheels"].values() if any(c["folder"] == folder for c in w["chunks"])]
    return all(w["sha256"] in installed for w in wheels)


def install(wheels: list[Path], site: Path, python: str) -> None:
    site.mkdir(parents=True, exist_ok=True)
    has_pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if has_pip:
        command = [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile", "--quiet"]
        command += ["--disable-pip-version-check", "--upgrade", "--target", str(site), *map(str, wheels)]
        subprocess.run(command, check=True, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
        return
    for wheel in wheels:
        unpack(wheel, site)


def unpack(wheel: Path, site: Path) -> None:
    """What pip does for these wheels, where that Python has no pip: a wheel is a zip whose root is
    site-packages; its .data/{purelib,platlib} go there too (scripts and headers are not needed)."""
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            parts = Path(info.filename).parts
            if ".." in parts or info.filename.startswith("/"):
                raise SystemExit(f"{wheel.name}: unsafe member {info.filename!r}")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            destination = site.joinpath(*parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            mode = info.external_attr >> 16
            if mode:
                os.chmod(destination, mode & 0o777 | 0o600)


def _installed(site: Path) -> set[str]:
    record = site / ".carried"
    return set(record.read_text(encoding="utf-8").split()[::2]) if record.is_file() else set()


def _mark_installed(site: Path, digest: str, name: str) -> None:
    with open(site / ".carried", "a", encoding="utf-8") as f:
        f.write(f"{digest} {name}\n")


def complete(root: Path, site: Path) -> int:
    manifest = _manifest(root)
    if manifest is None:
        print("no carry folders here (the machine was released since they were carried?)", file=sys.stderr)
        return 3
    installed = _installed(site)
    absent = [name for name, w in manifest["wheels"].items() if w["sha256"] not in installed]
    if absent:
        print(
            f"not installed yet: {', '.join(absent)}: carry the folders in the order gpu_carry.sh printed",
            file=sys.stderr,
        )
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--root", type=Path, default=Path.cwd())
    a.add_argument("--runtime", type=Path, required=True)
    a.add_argument("--small", type=Path, nargs="*", default=[])
    a.add_argument("--part-mib", type=float, default=60.0)
    a.add_argument("--python-tag", required=True)
    a.add_argument("--budget-s", type=int, default=270)
    for name in ("receive", "complete"):
        b = sub.add_parser(name)
        b.add_argument("--root", type=Path, default=Path.cwd())
        b.add_argument("--site", type=Path, required=True)
        b.add_argument("--stage", type=Path, default=None)
        b.add_argument("--python", default=sys.executable)
    sub.add_parser("tag", help="the Python tag the carried wheels are for").add_argument(
        "--root", type=Path, default=Path.cwd()
    )
    args = p.parse_args(argv)
    if args.command == "pack":
        tree = tree_bytes(args.root)
        capacity = int(min(args.part_mib, CALL_MIB - MARGIN_MIB - tree / 2**20) * 2**20)
        manifest = pack(args.root, args.small, args.runtime, capacity, args.python_tag)
        final_timeout = min(600, args.budget_s + FINAL_MARGIN_S)
        text = calls(manifest, args.budget_s, final_timeout)
        print(f"working tree: {tree / 2**20:.1f} MiB; each folder at most {capacity / 2**20:.1f} MiB")
        print(text)
        (args.root / ".gpu-build").mkdir(exist_ok=True)
        (args.root / ".gpu-build" / "CALLS.txt").write_text(text + "\n", encoding="utf-8")
        return 0
    if args.command == "tag":
        manifest = _manifest(args.root)
        print(manifest["python_tag"] if manifest else "")
        return 0 if manifest else 3
    if args.command == "receive":
        return receive(args.root, args.site, args.stage or args.root / ".gpu-stage", args.python)
    return complete(args.root, args.site)


if __name__ == "__main__":
    sys.exit(main())
