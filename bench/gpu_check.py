"""The rehearsed GPU check (issue 28): on one GPU machine, within a time budget, verify and measure fidrs on ONNX
Runtime's CUDA provider, and write `gpu-check.json` + `gpu-check.md` under --out.

  1. the provider that really ran (not a silent CPU fallback), device, ONNX Runtime, CUDA, cuDNN, driver;
     nvidia-smi before and after;
  2. fidelity: CUDA fp32 against the CPU provider on the same graph and inputs (per-image features against a
     derived bound, and the FD of two image sets), then the same with TF32, its difference reported;
  3. throughput: the bare network (fp32, TF32; the plan's batches) for the Inception, DINOv2 ViT-L/14 and CLIP
     ViT-L/14@336 (each in its default mode: CMMD's cmmd for the CLIP), device memory peak, the ratio to the
     fp32 ceiling; the host's decode + preprocess rate; `fidrs.features` end to end on 256² JPEGs;
  4. one pass/fail line per item; a global time budget that skips what no longer fits (reported as skipped).

Networks are built on the machine from seeded random weights in the official layouts, through fidrs' own
converters; every network runs in a child process of its own (this script with --child), given its share of
the remaining budget and killed if it overruns it. `scripts/gpu_check.sh` installs the carried wheels and runs
this; `--dry-run` runs every step on the CPU provider with tiny sizes (tests/plumbing/test_gpu_check.py, in CI).

Usage: python bench/gpu_check.py --out DIR [--dry-run] [--budget-s 270] [--only inception,...]
Exit status: 0 when no item failed, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gpu_check_env as env  # noqa: E402 - the bench folder's modules, found through the line above
from gpu_check_plan import EVENT_PREFIX, NO_PROVIDER, Plan, network_items  # noqa: E402
from gpu_check_report import Report  # noqa: E402

# The networks, in the order they run (what the budget reaches last is skipped first). The dry run maps them to
# its small stand-ins (gpu_check_fidrs.networks).
FULL_NETWORKS = ("inception", "dinov2-vitl14", "clip-vitl14-336")
DRY_NETWORKS = ("inception", "dinov2-vits14", "clip-vitl14-336")
GRACE_S = 20.0  # past its share of the budget, a child is killed
END_RESERVE_S = 5.0  # kept for nvidia-smi after and the report
LOG_TAIL_LINES = 40  # of a child's log, copied into the report when one of its items failed


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or HERE / "out" / "gpu-check"))
    p.add_argument("--dry-run", action="store_true", help="CPU provider, tiny sizes (what CI runs)")
    p.add_argument("--budget-s", type=float, default=None, help="whole run, seconds (default 270; dry run 240)")
    p.add_argument("--threads", type=int, default=None, help="decode threads (default 16; dry run: all cores)")
    p.add_argument("--only", default="", help="comma-separated networks to run (default: all)")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="the device the GPU items ask for (default: cuda; dry run cpu)",
    )
    p.add_argument("--work", type=Path, default=None, help="where the graphs and JPEGs go (default: a temp dir)")
    p.add_argument("--keep-work", action="store_true", help="keep the graphs in the work folder")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--first", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    if args.dry_run:
        plan = Plan.dry(args.budget_s or 240.0, args.threads or os.cpu_count() or 1)
    else:
        plan = Plan.full(args.budget_s or 270.0, args.threads or 16)
    if args.device is not None:  # e.g. a dry run that insists on CUDA where there is none: the fallback is refused
        provider = "CUDAExecutionProvider" if args.device == "cuda" else "CPUExecutionProvider"
        plan = dataclasses.replace(plan, device=args.device, expected_provider=provider)
    return plan


class Orchestrator:
    def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
        self.args = args
        self.plan = plan
        self.start = time.monotonic()
        names = DRY_NETWORKS if plan.dry_run else FULL_NETWORKS
        only = [n for n in args.only.split(",") if n]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"--only: unknown network(s) {unknown}; expected some of {list(names)}")
        self.names = [n for n in names if not only or n in only]
        self.items_of = {name: network_items(plan, name, first=i == 0) for i, name in enumerate(self.names)}
        expected = ["nvidia-smi"] + [item for name in self.names for item in self.items_of[name]]
        meta = {
            "dry_run": plan.dry_run,
            "device": plan.device,
            "expected_provider": plan.expected_provider,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": plan.budget_s,
            "decode_threads": plan.decode_threads,
            "batches": list(plan.batches),
            "command": " ".join(sys.argv),
        }
        self.report = Report(args.out, meta, expected)
        self.nvml = env.Nvml()
        self.sampler = env.MemorySampler(self.nvml)
        self.report.meta["memory_source"] = self.sampler.source
        self.work = (args.work or Path(tempfile.mkdtemp(prefix="fidrs-gpu-check-"))).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.logs = args.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def remaining(self) -> float:
        return self.plan.budget_s - (time.monotonic() - self.start)

    def run(self) -> int:
        self.report.env = {"host": env.host(), "gpu": self.nvml.device()}
        self.nvidia_smi("before")
        stop = ""
        for i, name in enumerate(self.names):
            if stop:
                self._close(name, "skipped", stop)
                continue
            self.network(i, name)
            if i == 0 and self.report.items["provider"]["status"] == "fail":
                stop = NO_PROVIDER  # (a provider item skipped for the budget stops nothing: every item checks it)
        self.nvidia_smi("after")
        self.report.meta["elapsed_s"] = round(time.monotonic() - self.start, 1)
        self.report.write()
        if self.args.work is None and not self.args.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        elif not self.args.keep_work:  # the graphs (GiBs); the JPEGs stay for a rerun
            for graph in self.work.glob("*.onnx"):
                graph.unlink()
        return 1 if self.report.failed else 0

    def nvidia_smi(self, when: str) -> None:
        text = env.nvidia_smi()
        if text is not None:
            self.report.text[when] = text
            (self.args.out / f"nvidia-smi-{when}.txt").write_text(text, encoding="utf-8")
        if when == "after":
            before, after = "before" in self.report.text, text is not None
            if before and after:
                self.report.add("nvidia-smi", "pass", "recorded before and after the run (below)")
            elif self.plan.dry_run:
                self.report.add("nvidia-smi", "skipped", "no nvidia-smi on this machine (dry run)")
            else:
                self.report.add(
                    "nvidia-smi", "fail", f"nvidia-smi missing or failing (before: {before}, after: {after})"
                )

    def _close(self, name: str, status: str, reason: str) -> None:
        """Every item of `name` that has no result yet gets `status` and `reason`."""
        for item in self.items_of[name]:
            if self.report.items[item]["status"] == "pending":
                self.report.add(item, status, reason)

    def network(self, index: int, name: str) -> None:
        later = sum(self.plan.per_network(self.plan.shares, n) for n in self.names[index:])
        share = self.plan.per_network(self.plan.shares, name) / later
        seconds = max(0.0, (self.remaining() - END_RESERVE_S) * share)
        if seconds < 5:
            self._close(name, "skipped", f"budget: {self.remaining():.0f} s left of {self.plan.budget_s:.0f} s")
            return
        command = [sys.executable, *(["-S"] if sys.flags.no_site else []), str(Path(__file__).resolve())]
        command += ["--child", name, "--seconds", f"{seconds:.1f}", "--out", str(self.args.out)]
        command += ["--budget-s", str(self.plan.budget_s), "--threads", str(self.plan.decode_threads)]
        command += ["--work", str(self.work), "--device", self.plan.device]
        command += ["--dry-run"] if self.plan.dry_run else []
        command += ["--first"] if index == 0 else []
        child_env = {**os.environ, "FIDRS_NUM_THREADS": str(self.plan.decode_threads), "PYTHONUNBUFFERED": "1"}
        log_path = self.logs / f"{name}.log"
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=child_env)
            killed = threading.Event()

            def kill() -> None:
                killed.set()
                child.kill()

            watchdog = threading.Timer(seconds + GRACE_S, kill)
            watchdog.start()
            self.sampler.start(child.pid)
            try:
                for line in child.stdout:
                    if line.startswith(EVENT_PREFIX):
                        self.event(json.loads(line[len(EVENT_PREFIX) :]))
                    else:
                        log.write(line)
                        log.flush()
                rc = child.wait()
            finally:
                watchdog.cancel()
                self.sampler.stop()
        failed = [item for item in self.items_of[name] if self.report.items[item]["status"] == "fail"]
        if failed or rc != 0:  # what the child wrote beside its events (tracebacks, ONNX Runtime's messages)
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
            self.report.logs[name] = "\n".join(tail)
        if killed.is_set():
            reason = f"killed: the network overran its {seconds:.0f} s share of the budget (logs/{name}.log)"
            status = "skipped"
        else:
            reason = f"the child process exited with status {rc} before reporting it (logs/{name}.log)"
            status = "fail"
        self._close(name, status, reason)

    def event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "phase":
            self.sampler.mark(event["name"])
        elif kind == "built":
            self.report.networks[event["network"]] = {k: v for k, v in event.items() if k not in ("event", "network")}
        elif kind == "result":
            data = dict(event.get("data") or {})
            peak = self.sampler.peak(event["item"])
            if peak is not None:
                data["memory_peak_bytes"] = peak
            self.report.add(event["item"], event["status"], event["summary"], data)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    plan = make_plan(args)
    if args.child:
        from gpu_check_items import child_main

        return child_main(args.child, plan, args.seconds, args.work, args.first)
    orchestrator = Orchestrator(args, plan)
    code = orchestrator.run()
    r = orchestrator.report
    counts = r.as_json()["counts"]
    print(f"gpu check: {counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped; {args.out}")
    for item in r.failed:
        print(f"FAIL {item}: {r.items[item]['summary']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
