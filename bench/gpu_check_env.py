"""The machine side of the GPU check, standard library only: the host, the GPU (NVML through ctypes, or
`nvidia-smi`), device memory sampled while a network runs, the CUDA libraries a process really loaded and their
versions, and where the CUDA libraries of the machine are (`gpu_check.sh` puts them on LD_LIBRARY_PATH).

Usage (gpu_check.sh): python3 bench/gpu_check_env.py cuda-lib-dirs   # one directory per line
"""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time

# What libonnxruntime_providers_cuda.so (onnxruntime-gpu 1.31, CUDA 13) links (readelf NEEDED) or loads at run
# time (cuDNN, cuFFT); libcuda.so.1 comes with the driver.
CUDA_LIBRARIES = (
    "libcudart.so.13",
    "libcublas.so.13",
    "libcublasLt.so.13",
    "libcurand.so.10",
    "libcufft.so.12",
    "libcudnn.so.9",
)
_LOADED = re.compile(r"lib(cudart|cublas|cublasLt|cudnn\w*|cufft|curand|nvrtc|cuda|nvidia-ml)\.so[.\d]*$")


def host() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            memory = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) * 1024
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --- NVML ------------------------------------------------------------------------------------------------------


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class Nvml:
    """The first GPU through libnvidia-ml (the library nvidia-smi uses); `available` is False without one."""

    def __init__(self) -> None:
        self.lib = None
        self.handle = ctypes.c_void_p()
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() == 0 and lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(self.handle)) == 0:
                self.lib = lib
        except (OSError, AttributeError):
            self.lib = None

    @property
    def available(self) -> bool:
        return self.lib is not None

    def _text(self, fn, *args) -> str:
        buffer = ctypes.create_string_buffer(256)
        return buffer.value.decode() if fn(*args, buffer, 256) == 0 else ""

    def device(self) -> dict:
        if not self.lib:
            return {}
        version = ctypes.c_int()
        cuda = self.lib.nvmlSystemGetCudaDriverVersion(ctypes.byref(version)) == 0
        return {
            "name": self._text(self.lib.nvmlDeviceGetName, self.handle),
            "driver": self._text(self.lib.nvmlSystemGetDriverVersion),
            "cuda_driver_api": f"{version.value // 1000}.{version.value % 1000 // 10}" if cuda else "",
            "memory_total_mib": self.memory_used(total=True) // 2**20,
        }

    def memory_used(self, total: bool = False) -> int:
        info = _Memory()
        if not self.lib or self.lib.nvmlDeviceGetMemoryInfo(self.handle, ctypes.byref(info)) != 0:
            return 0
        return int(info.total if total else info.used)


def nvidia_smi() -> str | None:
    """`nvidia-smi`'s full text, or None where there is none."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        done = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"nvidia-smi failed: {e}"
    return done.stdout + done.stderr


def _smi_memory_used() -> int:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return int(done.stdout.split()[0]) * 2**20
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return 0


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
    except (OSError, StopIteration, ValueError):
        return 0


class MemorySampler:
    """Samples memory every `period` seconds while a child process runs and keeps the peak per phase (the child
    says which phase it is in). GPU: the device's memory in use minus what was in use before the child started
    (only the check runs on the GPU), through NVML or else nvidia-smi; without a GPU (the dry run): the child's
    resident set."""

    def __init__(self, nvml: Nvml, period: float = 0.05) -> None:
        self.nvml = nvml
        if nvml.available:
            self.mode, self.source = "nvml", "GPU memory in use (NVML), minus the idle baseline"
        elif shutil.which("nvidia-smi"):
            self.mode, self.source = "smi", "GPU memory in use (nvidia-smi), minus the idle baseline"
            period = max(period, 0.25)
        else:
            self.mode, self.source = "rss", "resident set of the child process (no GPU)"
        self.period = period
        self.pid = 0
        self.baseline = 0
        self.phase = ""
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> int:
        if self.mode == "nvml":
            return self.nvml.memory_used()
        if self.mode == "smi":
            return _smi_memory_used()
        return _rss(self.pid)

    def start(self, pid: int) -> None:
        self.pid = pid
        self.phase = ""
        self.baseline = 0 if self.mode == "rss" else self._read()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def mark(self, phase: str) -> None:
        self.phase = phase

    def peak(self, phase: str) -> int | None:
        """The phase's peak; one reading now when the phase, still the child's current one, was shorter than the
        sampling period (a dry run's tiny items are), so that no item goes without its figure."""
        if phase not in self.peaks and phase == self.phase and self.pid:
            self.peaks[phase] = max(0, self._read() - self.baseline)
        return self.peaks.get(phase)

    def _loop(self) -> None:
        while not self._stop.is_set():
            used = max(0, self._read() - self.baseline)
            if self.phase:
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), used)
            time.sleep(self.period)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# --- the CUDA libraries of this process ----------------------------------------------------------------------


def loaded_libraries() -> list[str]:
    """Real paths of the CUDA, cuDNN and driver libraries mapped into this process."""
    found = set()
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            for line in f:
                path = line.rstrip("\n").split(maxsplit=5)[-1] if len(line.split()) >= 6 else ""
                if path.startswith("/") and _LOADED.search(os.path.basename(path)):
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(found)


def library_versions(paths: list[str]) -> dict:
    """cuDNN's and the CUDA runtime's own version calls, on the copies this process loaded."""
    out: dict = {}
    for path in paths:
        name = os.path.basename(path)
        try:
            if name.startswith("libcudnn.so"):
                lib = ctypes.CDLL(path)
                lib.cudnnGetVersion.restype = ctypes.c_size_t
                v = int(lib.cudnnGetVersion())  # major·10000 + minor·100 + patch (cuDNN 9)
                out["cudnn"] = f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
            elif name.startswith("libcudart.so"):
                lib = ctypes.CDLL(path)
                for key, fn in (("cuda_runtime", lib.cudaRuntimeGetVersion), ("cuda_driver", lib.cudaDriverGetVersion)):
                    v = ctypes.c_int()
                    if fn(ctypes.byref(v)) == 0:
                        out[key] = f"{v.value // 1000}.{v.value % 1000 // 10}"
        except (OSError, AttributeError):
            continue
    return out


def cuda_lib_dirs() -> list[str]:
    """Directories holding the CUDA libraries onnxruntime-gpu needs, found where this machine can have them:
    NVIDIA's pip packages (`nvidia/*/lib` in any site directory), a CUDA toolkit under /usr/local, the
    distribution's library directories. Libraries the loader already finds (ldconfig) need no directory."""
    import site

    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    candidates = []
    for root in roots:
        candidates += glob.glob(os.path.join(root, "nvidia", "*", "lib"))
    candidates += glob.glob("/usr/local/cuda*/lib64") + glob.glob("/usr/local/cuda*/targets/*/lib")
    candidates += ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"]
    known = _ldconfig_names()
    dirs: list[str] = []
    for library in CUDA_LIBRARIES:
        if library in known:
            continue
        for directory in candidates:
            if os.path.exists(os.path.join(directory, library)):
                if directory not in dirs:
                    dirs.append(directory)
                break
    return dirs


def _ldconfig_names() -> set[str]:
    try:
        done = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}


def missing_cuda_libraries(dirs: list[str]) -> list[str]:
    known = _ldconfig_names()
    return [
        lib
        for lib in CUDA_LIBRARIES
        if lib not in known and not any(os.path.exists(os.path.join(d, lib)) for d in dirs)
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["cuda-lib-dirs"]:
        print("\n".join(cuda_lib_dirs()))
    elif sys.argv[1:] == ["missing-cuda-libs"]:
        print("\n".join(missing_cuda_libraries([d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d])))
    else:
        sys.exit("usage: gpu_check_env.py cuda-lib-dirs | missing-cuda-libs")
