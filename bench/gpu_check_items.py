"""The GPU check's measurements for one network, run in a child process of bench/gpu_check.py (one per network:
a crash, a hang or a runaway cuDNN search costs that network only, and each starts with clean device memory).

The child builds the network from seeded random weights, then reports its items in order: the provider that
really ran (first network only), fidelity of CUDA fp32 and TF32 against the CPU provider, bare-network
throughput per precision and batch, the host's decode + preprocess rate, and fidrs end to end. Each result is
one line `GPUCHECK {json}` on stdout (anything else there, such as ONNX Runtime's own prints, is only logged);
a `phase` line before each item tells the parent which item the memory it samples belongs to.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gpu_check_bounds import fd_bound, fd_bound_measured, fp32_bound, relative_errors, tf32_estimate
from gpu_check_plan import EVENT_PREFIX, FP32_CEILING_FLOPS, NO_PROVIDER, PRECISIONS, Plan, network_items

SEED = 20270101
GAIN_STEP = 1e-4  # relative size of the input perturbation that measures the error gain
E2E_RESERVE_S = 25.0  # of a network's time, kept for its host and end-to-end items (full run)
JPEG_QUALITY = 90


def emit(event: dict) -> None:
    print(EVENT_PREFIX + json.dumps(_finite(event)), flush=True)


def _finite(value):
    """JSON without NaN or infinity: a non-finite float becomes its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


class Skip(Exception):
    """An item that cannot or need not run (its reason is reported)."""


class Fail(Exception):
    """An item whose check failed (its reason is reported)."""


def synthetic_sets(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of n 256² images from different distributions: B has other content and a gamma of 0.6."""
    from synthetic import synthetic_image

    a = np.stack([np.asarray(synthetic_image(i)) for i in range(n)])
    b = np.stack([np.asarray(synthetic_image(50_000 + i)) for i in range(n)])
    b = np.round(255.0 * (b / 255.0) ** 0.6).astype(np.uint8)
    return a, b


def write_jpegs(folder: Path, unique: int, total: int, threads: int) -> list[str]:
    """`total` 256² JPEGs (quality 90): `unique` distinct synthetic images, the rest byte copies of them (each
    file is its own inode, so fidrs decodes every one; the feature cache is off)."""
    from synthetic import synthetic_image

    done = folder / f"complete-{unique}-{total}"
    paths = [folder / f"img_{i:05d}.jpg" for i in range(total)]
    if done.exists():
        return [str(p) for p in paths]
    folder.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        synthetic_image(i).save(paths[i], "JPEG", quality=JPEG_QUALITY)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(write, range(min(unique, total))))
    for i in range(unique, total):
        shutil.copyfile(paths[i % unique], paths[i])
    done.touch()
    return [str(p) for p in paths]


class NetworkRun:
    def __init__(self, fx, network, plan: Plan, seconds: float, work: Path, first: bool) -> None:
        self.fx = fx  # the fidrs adapter (gpu_check_fidrs)
        self.network = network
        self.name = network.backbone
        self.plan = plan
        self.deadline = time.monotonic() + seconds
        self.work = work
        self.first = first
        self.graph = work / f"{self.name}.onnx"
        self.costs = None
        self.epsilon = None  # the fp32 per-image bound, set by the fidelity item
        self.rates: dict[tuple[str, int], float] = {}  # bare-network images/s by (precision, batch)
        self.host_rate = None
        self.last_timing = None  # (batch, first-batch s, s per batch) of the last throughput item
        self.threads = int(os.environ.get("FIDRS_NUM_THREADS") or os.cpu_count() or 1)
        self.kept_session = None  # the provider item's fp32 session, reused by the fp32 items
        self.cpu = None  # the CPU-provider session every comparison is made against

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    # --- driving ---------------------------------------------------------------------------------------------

    def item(self, item_id: str, fn, *args) -> bool:
        emit({"event": "phase", "name": item_id})
        start = time.monotonic()
        try:
            summary, data = fn(*args)
            status = "pass"
        except Skip as e:
            status, summary, data = "skipped", str(e), {}
        except Fail as e:
            status, summary, data = "fail", str(e), getattr(e, "data", {})
        except Exception as e:  # noqa: BLE001 - any error is this item's failure; the others still run
            status, summary = "fail", f"{type(e).__name__}: {e}"
            data = {"traceback": traceback.format_exc(limit=8)}
        data["seconds"] = round(time.monotonic() - start, 3)
        emit({"event": "result", "item": item_id, "status": status, "summary": summary, "data": data})
        return status == "pass"

    def close(self, items: list[str], status: str, summary: str) -> None:
        for item_id in items:
            emit({"event": "result", "item": item_id, "status": status, "summary": summary, "data": {}})

    def run(self) -> None:
        items = network_items(self.plan, self.name, self.first)
        if not self.fx.has_backbone(self.name):
            return self.close(items, "skipped", f"backbone {self.name!r} is not in fidrs.backbones (yet)")
        emit({"event": "phase", "name": f"build/{self.name}"})
        try:
            self.prepare()
        except Exception as e:  # noqa: BLE001 - a converter that refuses the layout, a preprocessing mode it lacks
            print(traceback.format_exc(), file=sys.stderr)
            return self.close(items, "fail", f"building the network or its inputs failed: {type(e).__name__}: {e}")
        if self.first and not self.item("provider", self.provider):
            return self.close(items[1:], "skipped", NO_PROVIDER)  # nothing else could mean anything
        try:
            self.cpu_reference()
        except Exception as e:  # noqa: BLE001 - everything is compared with it
            print(traceback.format_exc(), file=sys.stderr)
            rest = items[1:] if self.first else items
            return self.close(rest, "fail", f"the CPU reference failed: {type(e).__name__}: {e}")
        for precision in PRECISIONS:
            session, error = self.kept_session, ""
            self.kept_session = None
            if session is None or precision != "fp32":
                try:
                    session = self.fx.open_session(self.graph, self.name, self.plan.device, precision == "tf32")
                except Exception as e:  # noqa: BLE001 - reported on each item that needed the session
                    session, error = None, f"{type(e).__name__}: {e}"
            self.item(f"fidelity/{self.name}/{precision}", self.fidelity, precision, session, error)
            for batch in self.plan.batches:
                self.item(
                    f"throughput/{self.name}/{precision}/b{batch}", self.throughput, precision, batch, session, error
                )
            del session
            self.fx.release_sessions()
        self.item(f"host/{self.name}", self.host)
        self.item(f"e2e/{self.name}", self.end_to_end)

    def prepare(self) -> None:
        """The graph from seeded random weights (fidrs' converter), and both image sets' network inputs."""
        t = time.monotonic()
        self.costs = self.fx.write_graph(self.network, self.fx.random_state(self.network, SEED), SEED, self.graph)
        emit(
            {
                "event": "built",
                "network": self.name,
                "seconds": round(time.monotonic() - t, 2),
                "flops": self.costs.flops,
                "depth": self.costs.depth,
                "longest_reduction": self.costs.longest_reduction,
                "mode": self.fx.default_mode(self.name),
            }
        )
        n = self.plan.per_network(self.plan.fidelity_images, self.name)
        images_a, images_b = synthetic_sets(n)
        self.inputs_a = self.fx.network_inputs(self.name, images_a)
        self.inputs_b = self.fx.network_inputs(self.name, images_b)

    # --- items -------------------------------------------------------------------------------------------

    def provider(self):
        """The provider that really ran: ONNX Runtime drops a provider it cannot load, so read it back."""
        from gpu_check_env import library_versions, loaded_libraries

        info = self.fx.versions()
        try:
            session = self.fx.open_session(self.graph, self.name, self.plan.device, False)
        except Exception as e:  # noqa: BLE001 - RuntimeUnavailableError above all: the fallback, refused
            self.fx.runtime_debug_info()  # ONNX Runtime's own account (packages, LD_LIBRARY_PATH, DLLs) to the log
            raise _fail(f"no {self.plan.expected_provider}: {type(e).__name__}: {e}", info) from None
        out = session.run(self.inputs_a[: self.plan.fidelity_batch])
        libraries = loaded_libraries()
        data = {
            **info,
            "session_providers": session.providers,
            "provider": session.provider,
            "input_memory": session.host_memory,
            "loaded_libraries": libraries,
            **library_versions(libraries),
        }
        self.kept_session = session
        if data["provider"] != self.plan.expected_provider:
            raise _fail(f"ran on {data['provider']}, expected {self.plan.expected_provider}", data)
        if not np.isfinite(out).all():
            raise Fail("the first batch gave non-finite features")
        versions = ", ".join(f"{k} {data[k]}" for k in ("onnxruntime", "cuda_runtime", "cudnn") if data.get(k))
        return f"{data['provider']} ({versions}; input in {data['input_memory']} memory)", data

    def _features(self, session, inputs: np.ndarray) -> np.ndarray:
        size = self.plan.fidelity_batch
        return np.concatenate([session.run(inputs[i : i + size]) for i in range(0, len(inputs), size)])

    def cpu_reference(self) -> None:
        """CPU-provider features of both sets and the graph's error gain: what the GPU is held to."""
        emit({"event": "phase", "name": f"cpu/{self.name}"})
        self.cpu = cpu = self.fx.open_session(self.graph, self.name, "cpu", False)
        self.cpu_a, self.cpu_b = self._features(cpu, self.inputs_a), self._features(cpu, self.inputs_b)
        k = min(self.plan.gain_images, len(self.inputs_a))
        x = self.inputs_a[:k].astype(np.float64)
        noise = np.random.default_rng(SEED).standard_normal(x.shape)
        scale = GAIN_STEP * np.linalg.norm(x.reshape(k, -1), axis=1) / np.linalg.norm(noise.reshape(k, -1), axis=1)
        moved = self._features(cpu, (x + noise * scale[:, None, None, None]).astype(np.float32))
        self.gain = float(np.max(relative_errors(self.cpu_a[:k], moved)) / GAIN_STEP)
        self.fx.release_sessions()  # the CPU session stays (self.cpu), out of fidrs' session cache

    def fidelity(self, precision: str, session, error: str):
        """Same graph, same inputs: per-image features and the FD of the two sets, CUDA against the CPU."""
        if session is None:
            raise Fail(f"no {precision} session: {error}")
        if session.provider != self.plan.expected_provider:
            raise Fail(f"the {precision} session runs on {session.provider}")
        got_a, got_b = self._features(session, self.inputs_a), self._features(session, self.inputs_b)
        if not (np.isfinite(got_a).all() and np.isfinite(got_b).all()):
            raise Fail(f"{precision}: non-finite features")
        errors = relative_errors(np.concatenate([self.cpu_a, self.cpu_b]), np.concatenate([got_a, got_b]))
        fd_cpu = self.fx.frechet(self.cpu_a, self.cpu_b)
        fd_gpu = self.fx.frechet(got_a, got_b)
        depth, longest = self.costs.depth, self.costs.longest_reduction
        epsilon = fp32_bound(depth, longest, self.gain)
        data = {
            "images": 2 * len(got_a),
            "max_relative_error": float(errors.max()),
            "median_relative_error": float(np.median(errors)),
            "fd_cpu": fd_cpu,
            "fd_gpu": fd_gpu,
            "fd_difference": fd_gpu - fd_cpu,
            "gain": self.gain,
            "depth": depth,
            "longest_reduction": longest,
            "fp32_bound": epsilon,
            "fd_bound": fd_bound(self.cpu_a, self.cpu_b, epsilon, fd_cpu),
            "fd_bound_measured": fd_bound_measured(self.cpu_a, self.cpu_b, got_a, got_b, fd_cpu),
        }
        change = abs(fd_gpu - fd_cpu)
        if change > data["fd_bound_measured"]:
            raise _fail(f"|ΔFD| {change:.3g} exceeds the bound its own feature differences give", data)
        if precision == "fp32":
            self.epsilon = epsilon
            summary = (
                f"max per-image error {errors.max():.2e} (bound {epsilon:.1e}); FD {fd_cpu:.6g} on CPU, "
                f"|ΔFD| {change:.2e} (bound {data['fd_bound']:.1e})"
            )
            if errors.max() > epsilon or change > data["fd_bound"]:
                raise _fail(summary, data)
            return summary, data
        data["tf32_estimate"] = tf32_estimate(depth, self.gain)
        data["fd_relative_difference"] = change / max(abs(fd_cpu), 1e-300)
        return (
            f"reported: max per-image error {errors.max():.2e} (expected scale {data['tf32_estimate']:.1e}); "
            f"FD {fd_gpu:.6g} vs {fd_cpu:.6g} on CPU ({data['fd_relative_difference']:.2e} relative)",
            data,
        )

    def throughput(self, precision: str, batch: int, session, error: str):
        """The bare network as fidrs runs it (IO binding: upload, run, outputs back), in images/s."""
        if session is None:
            raise Fail(f"no {precision} session: {error}")
        if self.last_timing is not None:
            previous, first, per_batch = self.last_timing
            scale = batch / previous
            estimate = first * scale + max(self.plan.min_seconds, self.plan.min_iterations * per_batch * scale)
            reserve = 0.0 if self.plan.dry_run else E2E_RESERVE_S
            if self.remaining() - reserve < estimate:
                raise Skip(f"budget: needs ~{estimate:.0f} s, {self.remaining():.0f} s left for this network")
        x = np.resize(self.inputs_a, (batch, *self.inputs_a.shape[1:]))  # the images repeated to fill the batch
        t = time.perf_counter()
        out = session.run(x)
        first = time.perf_counter() - t
        if not np.isfinite(out).all():
            raise Fail("non-finite features")
        iterations, start = 0, time.perf_counter()
        while iterations < self.plan.min_iterations or time.perf_counter() - start < self.plan.min_seconds:
            session.run(x)
            iterations += 1
            if self.remaining() < 0:
                break
        elapsed = time.perf_counter() - start
        rate = batch * iterations / elapsed
        self.rates[(precision, batch)] = rate
        self.last_timing = (batch, first, elapsed / iterations)
        flops = self.costs.flops
        data = {
            "provider": session.provider,
            "batch": batch,
            "images_per_s": rate,
            "first_batch_s": first,
            "iterations": iterations,
            "timed_s": elapsed,
            "gflop_per_image": flops / 1e9,
            "achieved_tflops": rate * flops / 1e12,
            "fp32_ceiling_images_per_s": FP32_CEILING_FLOPS / flops,
            "ratio_to_fp32_ceiling": rate * flops / FP32_CEILING_FLOPS,
        }
        if session.provider != self.plan.expected_provider:
            raise _fail(f"ran on {session.provider}", data)
        return (
            f"{rate:,.0f} images/s ({data['ratio_to_fp32_ceiling']:.0%} of the fp32 ceiling "
            f"{data['fp32_ceiling_images_per_s']:,.0f}); first batch {first:.2f} s",
            data,
        )

    def _jpegs(self) -> list[str]:
        total = self.plan.per_network(self.plan.e2e_images, self.name)
        unique = min(self.plan.e2e_unique, total)
        return write_jpegs(self.work / "jpeg256", unique, total, self.threads)

    def host(self):
        """Decode + preprocess alone (native, FIDRS_NUM_THREADS threads): the rate the host can feed."""
        paths = self._jpegs()
        batch = self.plan.e2e_batch
        self.fx.decode_preprocess(paths[:batch], self.name, batch)  # page cache, thread pool
        t = time.perf_counter()
        count = self.fx.decode_preprocess(paths, self.name, batch)
        elapsed = time.perf_counter() - t
        self.host_rate = count / elapsed
        mode = self.fx.default_mode(self.name)
        data = {"images": count, "threads": self.threads, "mode": mode, "images_per_s": self.host_rate}
        data["per_thread_images_per_s"] = self.host_rate / self.threads
        return f"{self.host_rate:,.0f} images/s ({self.threads} threads, 256² JPEG, mode {mode})", data

    def end_to_end(self):
        """`fidrs.features` on the JPEGs (fp32, the e2e batch): decode, preprocess, upload, network."""
        if self.epsilon is None:
            raise Skip("the fp32 fidelity item did not pass, so there is no bound to hold these features to")
        paths = self._jpegs()
        batch = self.plan.e2e_batch
        t = time.perf_counter()
        self.fx.features_end_to_end(paths[: 2 * batch], self.name, self.graph, self.plan.device, batch)
        warm = time.perf_counter() - t
        network = self.rates.get(("fp32", batch)) or _nearest(self.rates, batch)
        estimate = len(paths) / max(min(r for r in (self.host_rate, network, 1e9) if r), 1.0)
        if not self.plan.dry_run and self.remaining() < estimate:
            raise Skip(f"budget: needs ~{estimate:.0f} s, {self.remaining():.0f} s left for this network")
        t = time.perf_counter()
        got = self.fx.features_end_to_end(paths, self.name, self.graph, self.plan.device, batch)
        elapsed = time.perf_counter() - t
        rate = len(paths) / elapsed
        self.fx.release_sessions()
        k = min(self.plan.per_network(self.plan.e2e_check_images, self.name), len(paths))
        cpu = self._features(self.cpu, self.fx.load_inputs(paths[:k], self.name))  # same files, the CPU provider
        errors = relative_errors(cpu, got[:k])
        bound_by = ""
        if network and self.host_rate:
            bound_by = "host decode + preprocess" if self.host_rate < network else "network"
        data = {
            "images": len(paths),
            "batch": batch,
            "threads": self.threads,
            "warmup_s": warm,
            "seconds": elapsed,
            "images_per_s": rate,
            "host_images_per_s": self.host_rate,
            "network_fp32_images_per_s": network,
            "bound_by": bound_by,
            "efficiency": rate / min(network, self.host_rate) if network and self.host_rate else None,
            "max_relative_error_vs_cpu": float(errors.max()),
            "fp32_bound": self.epsilon,
        }
        if got.shape != (len(paths), self.fx.feature_dim(self.name)) or not np.isfinite(got).all():
            raise _fail(f"features of shape {got.shape}, finite: {bool(np.isfinite(got).all())}", data)
        summary = (
            f"{rate:,.0f} images/s end to end; host {self.host_rate:,.0f}, network {network or 0:,.0f} images/s "
            f"→ bound by {bound_by or '?'}; first {k} vs CPU: max error {errors.max():.1e} (bound {self.epsilon:.1e})"
        )
        if errors.max() > self.epsilon:
            raise _fail(summary, data)
        return summary, data


def _nearest(rates: dict, batch: int):
    fp32 = {b: r for (p, b), r in rates.items() if p == "fp32"}
    return fp32[min(fp32, key=lambda b: abs(b - batch))] if fp32 else None


def _fail(summary: str, data: dict) -> Fail:
    error = Fail(summary)
    error.data = data
    return error


def child_main(network_name: str, plan: Plan, seconds: float, work: Path, first: bool) -> int:
    import gpu_check_fidrs as fx  # after FIDRS_NUM_THREADS is set (the parent sets it in our environment)

    network = next((n for n in fx.networks(plan.dry_run) if n.backbone == network_name), None)
    if network is None:
        print(f"unknown network {network_name!r}", file=sys.stderr)
        return 2
    NetworkRun(fx, network, plan, seconds, work, first).run()
    return 0
