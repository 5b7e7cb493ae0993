"""fidrs on a local Ray instance against plain fidrs, on the same images and the same cores, and the driver's
memory as the job grows (1k vs 10k images).

Each run is a fresh process (`python bench/bench_ray.py --run plain|ray N`), so that peak RSS is that run's
alone; the Ray runs start their own local Ray instance with every core (one worker per core, one ONNX Runtime
thread each) and report how long that start took. The 10k images are copies of the shared fruit photos under
new names (distinct files: fidrs counts a hard link once).

Usage: python bench/bench_ray.py [--images 1000] [--memory-images 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from common import DATA, WEIGHTS, machine, peak_rss_mib


def image_files(count: int, folder: Path) -> list[str]:
    photos = sorted(p for p in (DATA / "training").rglob("*.jpg")) + sorted((DATA / "validation").rglob("*.jpg"))
    files = []
    for i in range(count):
        target = folder / f"{i:06d}.jpg"
        if not target.exists():
            shutil.copyfile(photos[i % len(photos)], target)
        files.append(str(target))
    return files


def run_one(kind: str, files: list[str]) -> dict:
    warnings.simplefilter("ignore")
    import fidrs

    start = time.perf_counter()
    setup = 0.0
    if kind == "plain":
        stats = fidrs.stats(files, weights=str(WEIGHTS), cache=False)
    else:
        import fidrs.distributed
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        setup = time.perf_counter() - start
        stats = fidrs.distributed.stats(files, weights=str(WEIGHTS))
        ray.shutdown()
    seconds = time.perf_counter() - start
    return {"kind": kind, "n": stats.n, "seconds": seconds, "ray_start_seconds": setup, "peak_rss_mib": peak_rss_mib()}


def spawn(kind: str, count: int, folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--run", kind, str(count), "--folder", str(folder)],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--memory-images", type=int, default=10000)
    parser.add_argument("--run", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        kind, count = args.run[0], int(args.run[1])
        print(json.dumps(run_one(kind, image_files(count, Path(args.folder)))))
        return
    folder = Path(tempfile.mkdtemp(prefix="fidrs-bench-ray-"))
    try:
        image_files(max(args.images, args.memory_images), folder)
        plain = spawn("plain", args.images, folder)
        on_ray = spawn("ray", args.images, folder)
        large = spawn("ray", args.memory_images, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"machine: {machine()}; {args.images} fruit photos (Inception, random weights), cache off")
    print("| run | images | seconds | images/s | Ray start (s) | images/s without Ray start | driver peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for r in (plain, on_ray, large):
        steady = r["n"] / (r["seconds"] - r["ray_start_seconds"])
        print(
            f"| {r['kind']} | {r['n']} | {r['seconds']:.1f} | {r['n'] / r['seconds']:.2f} | "
            f"{r['ray_start_seconds']:.1f} | {steady:.2f} | {r['peak_rss_mib']:.0f} MiB |"
        )
    ratio = (on_ray["n"] / on_ray["seconds"]) / (plain["n"] / plain["seconds"])
    steady = (on_ray["n"] / (on_ray["seconds"] - on_ray["ray_start_seconds"])) / (plain["n"] / plain["seconds"])
    print(f"Ray / plain rate: {100 * ratio:.0f} % end to end, {100 * steady:.0f} % without the Ray start")
    growth = large["peak_rss_mib"] / on_ray["peak_rss_mib"]
    print(f"driver peak RSS, {args.memory_images} vs {args.images} images: {growth:.2f}x")


if __name__ == "__main__":
    main()
