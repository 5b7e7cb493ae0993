"""fidrs against pytorch-fid, side by side: same machine, same run, same files.

One command does everything:

    python bench/bench_vs_pytorch_fid.py            # from the repository root, in fidrs' venv

1. Creates `bench/.venv-pytorch-fid` (once) with pytorch-fid 0.3.0 and torch from PyPI. torch never enters
   fidrs' own environment.
2. Points pytorch-fid at the shared stand-in checkpoint through TORCH_HOME, under the real file's name, so
   pytorch-fid loads it through its own code path (the real weights cannot be downloaded here).
3. Builds the datasets under bench/out/data: a subset of the shared fruit photos (training vs validation)
   and a deterministic synthetic set of 256×256 PNGs (bench/synthetic.py).
4. Runs each tool as a fresh process on both datasets, `--runs` rounds, alternating which goes first, and
   records wall time, images/s end to end, time to first result (launch → first batch out of the
   network), peak memory and the FID. Then fidrs' and pytorch-fid's bare-network rates, fidrs' warm-cache
   gate, and fidrs' peak memory at each `--rss-sizes` N.
5. Writes bench/out/vs_pytorch_fid.json and replaces its section of docs/BENCHMARKS.md.

Peak memory is measured two ways: the largest RSS of any one process (wait4's ru_maxrss) and the peak of
the summed PSS of the whole process tree (pytorch-fid's DataLoader workers are separate processes),
sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import DATA, WEIGHTS, machine
from synthetic import write_synthetic_set

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
OUT = BENCH / "out"
TORCH_VENV = BENCH / ".venv-pytorch-fid"
PYTORCH_FID = "pytorch-fid==0.3.0"
REAL_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
SECTION_START = "<!-- bench_vs_pytorch_fid: start (written by bench/bench_vs_pytorch_fid.py) -->"
SECTION_END = "<!-- bench_vs_pytorch_fid: end -->"


# ---------------------------------------------------------------- environments


def torch_python() -> Path:
    """The torch venv's interpreter, created with pytorch-fid on first use."""
    python = TORCH_VENV / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import pytorch_fid"], capture_output=True).returncode:
        print(f"creating {TORCH_VENV} with {PYTORCH_FID} (torch from PyPI: several GB)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", TORCH_VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", PYTORCH_FID], check=True)
    return python


def torch_home() -> Path:
    """A TORCH_HOME whose hub cache holds the stand-in checkpoint under the real file's name."""
    home = OUT / "torch-home"
    target = home / "hub" / "checkpoints" / REAL_WEIGHTS_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(WEIGHTS.resolve())
    return home


def versions(python: Path, modules: list[str]) -> dict[str, str]:
    code = "import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    out = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


# ---------------------------------------------------------------- datasets


def link_set(name: str, files: list[Path]) -> Path:
    """A flat directory of symlinks (pytorch-fid reads one directory level), rebuilt every run."""
    directory = OUT / "data" / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for i, file in enumerate(files):
        (directory / f"{i:05d}_{file.name}").symlink_to(file.resolve())
    return directory


def spread(files: list[Path], count: int) -> list[Path]:
    """`count` files evenly spaced over the sorted list (all classes represented); count 0 = all."""
    if count <= 0 or count >= len(files):
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]


def datasets(fruit_per_side: int, synthetic_per_side: int, rss_sizes: list[int]) -> dict:
    training = sorted(DATA.glob("training/*/*.jpg"))
    validation = sorted(DATA.glob("validation/*/*.jpg"))
    synthetic = write_synthetic_set(OUT / "data" / "synthetic-256", max([2 * synthetic_per_side, *rss_sizes]))
    sets = {
        "fruit photos (100×100 JPEG)": (
            link_set("fruit-a", spread(training, fruit_per_side)),
            link_set("fruit-b", spread(validation, fruit_per_side)),
        ),
        "synthetic (256×256 PNG)": (
            link_set("synthetic-a", synthetic[:synthetic_per_side]),
            link_set("synthetic-b", synthetic[synthetic_per_side : 2 * synthetic_per_side]),
        ),
    }
    rss = {n: link_set(f"synthetic-{n}", synthetic[:n]) for n in rss_sizes}
    return {"pairs": sets, "rss": rss}


def warm_page_cache(directories: list[Path]) -> None:
    """Read every file once so that neither tool pays for the first read from disk."""
    for directory in directories:
        for link in directory.iterdir():
            link.read_bytes()


# ---------------------------------------------------------------- measuring one process


def _tree_pss_kib(root: int) -> int:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def measure(command: list, env: dict[str, str]) -> dict:
    """Run `command`; return its BENCH_RESULT plus wall_s, max_rss_mib and peak_tree_pss_mib."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.time()
        proc = subprocess.Popen(command, env={**os.environ, **env, "BENCH_T0": repr(t0)}, stdout=out, stderr=err)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], _tree_pss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)  # wait4, not wait: it returns this child's resource usage
        wall = time.time() - t0
        done.set()
        sampler.join()
        returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if returncode or not lines:
        raise RuntimeError(f"{command} failed ({returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
    result = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    result.update(wall_s=wall, max_rss_mib=usage.ru_maxrss / 1024, peak_tree_pss_mib=peak[0] / 1024)
    return result


# ---------------------------------------------------------------- the runs


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.torch_python = torch_python()
        self.torch_env = {"TORCH_HOME": str(torch_home())}
        self.fidrs_cache = OUT / "fidrs-cache"
        self.fidrs_env = {"FIDRS_CACHE": str(self.fidrs_cache)}
        self.args = args

    def fidrs(self, *args: object, env: dict[str, str] | None = None) -> dict:
        command = [sys.executable, BENCH / "driver_fidrs.py", *map(str, args)]
        return measure(command, {**self.fidrs_env, **(env or {})})

    def pytorch_fid(self, *args: object) -> dict:
        return measure([self.torch_python, BENCH / "driver_pytorch_fid.py", *map(str, args)], self.torch_env)

    def compare(self, dir_a: Path, dir_b: Path) -> dict:
        n = sum(1 for _ in dir_a.iterdir()) + sum(1 for _ in dir_b.iterdir())
        runs: dict[str, list[dict]] = {"fidrs": [], "pytorch-fid": []}
        for round_ in range(self.args.runs):
            order = ["fidrs", "pytorch-fid"] if round_ % 2 == 0 else ["pytorch-fid", "fidrs"]
            for tool in order:
                if tool == "fidrs":
                    result = self.fidrs("score", dir_a, dir_b, WEIGHTS)
                else:
                    result = self.pytorch_fid("score", dir_a, dir_b)
                result["images_per_s"] = n / result["wall_s"]
                runs[tool].append(result)
                print(
                    f"  {tool:12s} round {round_ + 1}: {result['wall_s']:7.1f} s, "
                    f"{result['images_per_s']:5.2f} images/s, first batch {result['first_batch_s']:5.1f} s, "
                    f"peak PSS {result['peak_tree_pss_mib']:6.0f} MiB, FID {fid_text(result)}",
                    flush=True,
                )
        return {"images": n, "runs": runs}

    def warm_cache_gate(self, dir_a: Path, dir_b: Path) -> dict:
        """First run of a gate with an empty feature cache, then `runs` reruns on the warm cache."""
        env = {"FIDRS_CACHE": str(OUT / "fidrs-cache-gate")}
        shutil.rmtree(OUT / "fidrs-cache-gate" / "features", ignore_errors=True)
        cold = self.fidrs("score", dir_a, dir_b, WEIGHTS, "--cache", env=env)
        warm = [self.fidrs("score", dir_a, dir_b, WEIGHTS, "--cache", env=env) for _ in range(self.args.runs)]
        print(f"  warm cache: cold {cold['wall_s']:.1f} s, warm {[round(w['wall_s'], 2) for w in warm]} s", flush=True)
        return {"cold": cold, "warm": warm}


def fid_text(result: dict) -> str:
    return f"{result['fid']:.5f}" if result.get("fid") is not None else f"none: {result.get('error', '?')[:60]}"


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def run_all(args: argparse.Namespace) -> dict:
    bench = Bench(args)
    data = datasets(args.fruit_per_side, args.synthetic_per_side, args.rss_sizes)
    pairs = data["pairs"]
    warm_page_cache([d for pair in pairs.values() for d in pair] + list(data["rss"].values()))
    print("warm-up (builds fidrs' ONNX model once, loads torch once)", flush=True)
    fruit_a, fruit_b = pairs["fruit photos (100×100 JPEG)"]
    small_a = link_set("warmup-a", sorted(fruit_a.iterdir())[:60])
    small_b = link_set("warmup-b", sorted(fruit_b.iterdir())[:60])
    bench.fidrs("score", small_a, small_b, WEIGHTS)
    bench.pytorch_fid("score", small_a, small_b)

    results: dict = {"comparisons": {}}
    for name, (dir_a, dir_b) in pairs.items():
        print(f"{name}: {dir_a.name} vs {dir_b.name}", flush=True)
        results["comparisons"][name] = bench.compare(dir_a, dir_b)
    print("bare network", flush=True)
    results["bare"] = {
        "fidrs": [bench.fidrs("bare", WEIGHTS)["bare_images_per_s"] for _ in range(args.runs)],
        "pytorch-fid": [bench.pytorch_fid("bare")["bare_images_per_s"] for _ in range(args.runs)],
    }
    print(f"  {results['bare']}", flush=True)
    if not args.skip_cache:
        results["warm_cache"] = bench.warm_cache_gate(*pairs["synthetic (256×256 PNG)"])
    results["rss"] = {}
    for n, directory in data["rss"].items():
        result = bench.fidrs("stats", directory, WEIGHTS)
        results["rss"][n] = result
        print(
            f"  fidrs stats on {n} images: {result['wall_s']:.1f} s, max RSS {result['max_rss_mib']:.0f} MiB, "
            f"peak PSS {result['peak_tree_pss_mib']:.0f} MiB",
            flush=True,
        )
    results["environment"] = {
        "machine": machine(),
        "cpu": cpu_model(),
        "fidrs_env": versions(Path(sys.executable), ["fidrs", "onnxruntime", "numpy"]),
        "torch_env": versions(bench.torch_python, ["pytorch-fid", "torch", "torchvision", "pillow", "numpy", "scipy"]),
        "command": " ".join(["python bench/bench_vs_pytorch_fid.py", *sys.argv[1:]]),
        "runs": args.runs,
    }
    return results


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


# ---------------------------------------------------------------- the report


def render(results: dict) -> str:
    env = results["environment"]
    lines = [
        SECTION_START,
        "## fidrs vs pytorch-fid, side by side (issue 6)",
        "",
        f"`{env['command']}`: {env['cpu']}, {env['machine']}. fidrs env: "
        + ", ".join(f"{k} {v}" for k, v in env["fidrs_env"].items())
        + "; pytorch-fid env (its own venv): "
        + ", ".join(f"{k} {v}" for k, v in env["torch_env"].items())
        + f". Each tool is a fresh process per run; medians of {env['runs']} runs (all runs in the JSON), "
        "rounds alternate which tool goes first; page cache warm. Both tools use their defaults on this "
        "CPU-only machine: pytorch-fid batch 50 with its command line's workers, fidrs its default batch "
        "(16 on CPU), no feature cache. Time to first result = launch → first batch of features out of the network "
        "(imports, model load, first decode). Wall time includes the Fréchet distance.",
        "",
        "| dataset | images | tool | wall s | images/s | speed-up | first result s | peak RSS MiB "
        "| peak tree PSS MiB | FID |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, comparison in results["comparisons"].items():
        base = median(comparison["runs"]["pytorch-fid"], "images_per_s")
        for tool, runs in comparison["runs"].items():
            rate = median(runs, "images_per_s")
            lines.append(
                f"| {name} | {comparison['images']} | {tool} | {median(runs, 'wall_s'):.1f} | {rate:.2f} | "
                f"{rate / base:.2f}× | {median(runs, 'first_batch_s'):.1f} | {median(runs, 'max_rss_mib'):.0f} | "
                f"{median(runs, 'peak_tree_pss_mib'):.0f} | {fid_text(runs[0])} |"
            )
    bare = {tool: statistics.median(rates) for tool, rates in results["bare"].items()}
    lines += [
        "",
        f"Bare network (preloaded 299×299 batch of each tool's default size, 16 and 50; no decoding; median of "
        f"{env['runs']} processes × 4 "
        f"batches): **fidrs / ONNX Runtime {bare['fidrs']:.2f} images/s**, pytorch-fid / torch "
        f"{bare['pytorch-fid']:.2f} images/s.",
    ]
    for name, comparison in results["comparisons"].items():
        runs = comparison["runs"]["fidrs"]
        after_first = comparison["images"] - runs[0]["first_batch_images"]
        features_rate = after_first / (median(runs, "wall_s") - median(runs, "first_batch_s"))
        lines.append(
            f"- {name}: fidrs end to end {median(runs, 'images_per_s'):.2f} images/s = "
            f"**{100 * median(runs, 'images_per_s') / bare['fidrs']:.0f} %** of its bare network including start-up; "
            f"after the first batch {features_rate:.2f} images/s = {100 * features_rate / bare['fidrs']:.0f} %."
        )
    if "warm_cache" in results:
        cold = results["warm_cache"]["cold"]["wall_s"]
        warm = median(results["warm_cache"]["warm"], "wall_s")
        lines += [
            "",
            f"Warm feature cache, synthetic gate (`--cache`): first run {cold:.1f} s, reruns {warm:.2f} s "
            f"(median) = **{cold / warm:.0f}×**.",
        ]
    lines += [
        "",
        "Peak memory in N (`fidrs.stats` on the first N synthetic images, one run each):",
        "",
        "| N | wall s | images/s | max RSS MiB | peak tree PSS MiB |",
        "|---|---|---|---|---|",
    ]
    for n, r in results["rss"].items():
        lines.append(
            f"| {n} | {r['wall_s']:.1f} | {int(n) / r['wall_s']:.2f} | {r['max_rss_mib']:.0f} | "
            f"{r['peak_tree_pss_mib']:.0f} |"
        )
    refusals = {
        r["error"] for c in results["comparisons"].values() for r in c["runs"]["pytorch-fid"] if r.get("fid") is None
    }
    if refusals:
        lines += [
            "",
            "Where pytorch-fid's FID reads *none*, it did all the work and then raised instead of answering "
            f"({'; '.join(sorted(refusals))}): SciPy's `sqrtm` of the product of two singular covariances "
            "(n < 2048) left an imaginary part above its 1e-3 limit. fidrs' exact eigen method has no such "
            "failure. Its time and memory still count.",
        ]
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    if SECTION_START in text:
        before, rest = text.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds per measurement (medians are reported)")
    parser.add_argument(
        "--fruit-per-side",
        type=int,
        default=500,
        help="photos per side, spread over the classes (0: all 4,844 training vs 1,619 validation)",
    )
    parser.add_argument("--synthetic-per-side", type=int, default=1000, help="synthetic PNGs per side")
    parser.add_argument(
        "--rss-sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1000, 10000],
        help="N values for fidrs' peak memory (comma-separated)",
    )
    parser.add_argument("--skip-cache", action="store_true", help="skip the warm-cache gate")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/BENCHMARKS.md")
    parser.add_argument("--render-only", action="store_true", help="rewrite the docs from the last run's JSON")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.render_only:
        results = json.loads((OUT / "vs_pytorch_fid.json").read_text())
    else:
        results = run_all(args)
        (OUT / "vs_pytorch_fid.json").write_text(json.dumps(results, indent=1, default=str))
    section = render(results)
    print(section)
    if not args.no_docs:
        write_docs(section)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
