"""What the GPU check measures and at which sizes: the full run (one H200, ≤ 6 minutes) and the dry run (every
step on the CPU provider with tiny sizes, what CI runs), and the item list every report must account for."""

from __future__ import annotations

from dataclasses import dataclass, field

# H200 SXM: 67 TFLOP/s plain fp32 (no tensor cores). The TF32 and other tensor-core rates are several times it.
FP32_CEILING_FLOPS = 67e12
PRECISIONS = ("fp32", "tf32")
NO_PROVIDER = "the provider item failed: nothing ran on the expected provider"
EVENT_PREFIX = "GPUCHECK "  # a child's stdout line that carries an event (JSON); any other line is only logged


@dataclass(frozen=True)
class Plan:
    dry_run: bool
    device: str  # the device the "GPU" sessions ask for: "cuda", or "cpu" in the dry run
    expected_provider: str
    batches: tuple[int, ...]  # bare-network throughput
    fidelity_images: dict[str, int]  # per image set (two sets), by backbone name prefix
    fidelity_batch: int
    gain_images: int  # images the error-gain measurement perturbs
    e2e_images: dict[str, int]  # synthetic 256² JPEGs end to end, by backbone name prefix
    e2e_unique: int  # distinct JPEGs written; the rest are copies (cache off: each file is decoded anyway)
    e2e_batch: int
    e2e_check_images: dict[str, int]  # of those, compared with the CPU provider
    decode_threads: int  # FIDRS_NUM_THREADS of the child processes
    min_seconds: float  # a throughput figure times at least this long ...
    min_iterations: int  # ... and at least this many batches, after the first (which is reported apart)
    budget_s: float
    shares: dict[str, float] = field(default_factory=dict)  # each network's share of the remaining budget

    @staticmethod
    def full(budget_s: float = 270.0, decode_threads: int = 16) -> Plan:
        return Plan(
            dry_run=False,
            device="cuda",
            expected_provider="CUDAExecutionProvider",
            batches=(64, 200, 500),
            fidelity_images={"inception": 64, "dinov2": 32, "clip": 16},
            fidelity_batch=32,
            gain_images=8,
            e2e_images={"inception": 4000, "dinov2": 2000, "clip": 1000},  # whole batches: no new shape when timed
            e2e_unique=512,
            e2e_batch=200,
            e2e_check_images={"inception": 32, "dinov2": 16, "clip": 8},
            decode_threads=decode_threads,
            min_seconds=1.5,
            min_iterations=2,
            budget_s=budget_s,
            shares={"inception": 1.0, "dinov2": 1.0, "clip": 0.8},
        )

    @staticmethod
    def dry(budget_s: float = 240.0, decode_threads: int = 0) -> Plan:
        return Plan(
            dry_run=True,
            device="cpu",
            expected_provider="CPUExecutionProvider",
            batches=(2, 3),
            fidelity_images={"inception": 4, "dinov2": 4, "clip": 3},
            fidelity_batch=3,
            gain_images=2,
            e2e_images={"inception": 12, "dinov2": 8, "clip": 8},
            e2e_unique=6,
            e2e_batch=4,
            e2e_check_images={"inception": 3, "dinov2": 3, "clip": 3},
            decode_threads=decode_threads,
            min_seconds=0.0,
            min_iterations=1,
            budget_s=budget_s,
            shares={"inception": 1.0, "dinov2": 1.0, "clip": 1.0},
        )

    def per_network(self, table: dict, backbone: str):
        """The entry of `table` for a backbone, by its family prefix (inception, dinov2, clip)."""
        return next(value for prefix, value in table.items() if backbone.startswith(prefix))


def network_items(plan: Plan, backbone: str, first: bool) -> list[str]:
    """Every item a network's child process reports, in the order it runs them."""
    items = ["provider"] if first else []
    items += [f"fidelity/{backbone}/{p}" for p in PRECISIONS]
    items += [f"throughput/{backbone}/{p}/b{n}" for p in PRECISIONS for n in plan.batches]
    items += [f"host/{backbone}", f"e2e/{backbone}"]
    return items
