"""Fuzz the Python readers of untrusted files with atheris (libFuzzer for Python): the checkpoint reader
(legacy and zip serialisation), the `.npz` statistics/image reader, and the image decoders against Pillow.

    python fuzz/fuzz_readers.py checkpoint -atheris_runs=200000
    python fuzz/fuzz_readers.py npz -atheris_runs=200000
    python fuzz/fuzz_readers.py pillow -atheris_runs=1000000

For `pillow`, a finding is a file fidrs decodes where Pillow's `Image.open(p).convert("RGB")` refuses it or
gives other pixels (tests/pillow_fuzz.py judges each input); seeds are the differential corpus.

A finding is any exception other than fidrs's own error for a bad file (WeightsError, InvalidInputError),
any crash, or a run over libFuzzer's time/memory limits. Seeds are built on the fly: a small legacy and a
small zip checkpoint in torch's formats (written without torch), and fidrs/pytorch-fid statistics files.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import tempfile
import types
import zipfile
from collections import OrderedDict

import atheris
import numpy as np

with atheris.instrument_imports():
    from fidrs.checkpoint import LEGACY_MAGIC_NUMBER, load_state_dict
    from fidrs.errors import InvalidInputError, WeightsError
    from fidrs import Stats
    from fidrs.sources import resolve as resolve_source


def _fake_torch():
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch.FloatStorage, torch._utils, utils._rebuild_tensor_v2 = FloatStorage, utils, _rebuild_tensor_v2
    sys.modules.update({"torch": torch, "torch._utils": utils})
    return FloatStorage, _rebuild_tensor_v2


class _Ref:
    def __init__(self, key, array, rebuild):
        self.key, self.array, self.rebuild = key, array, rebuild

    def __reduce__(self):
        return self.rebuild, (self, 0, self.array.shape, (self.array.shape[1], 1), False, OrderedDict())


def _checkpoints() -> list[bytes]:
    storage_cls, rebuild = _fake_torch()
    tensors = OrderedDict((f"t{i}", np.arange(6, dtype=np.float32).reshape(2, 3) + i) for i in range(2))
    refs = OrderedDict((k, _Ref(str(i), a, rebuild)) for i, (k, a) in enumerate(tensors.items()))

    def pickler(buf, legacy):
        class P(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, _Ref):
                    tail = (None,) if legacy else ()
                    return ("storage", storage_cls, obj.key, "cpu", obj.array.size, *tail)
                return None

        return P(buf, protocol=2)

    # _Ref pickles as rebuild(<storage ref>, ...): the storage is the _Ref itself, via persistent_id.
    legacy = io.BytesIO()
    for record in (LEGACY_MAGIC_NUMBER, 1001, {"little_endian": True, "protocol_version": 1001}):
        pickle.dump(record, legacy, protocol=2)
    pickler(legacy, True).dump(refs)
    pickle.dump([r.key for r in refs.values()], legacy, protocol=2)
    for r in refs.values():
        legacy.write(r.array.size.to_bytes(8, "little") + r.array.tobytes())
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        buf = io.BytesIO()
        pickler(buf, False).dump(refs)
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for r in refs.values():
            z.writestr(f"archive/data/{r.key}", r.array.tobytes())
    return [legacy.getvalue(), zipped.getvalue()]


def _npz_files() -> list[bytes]:
    out = []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4))
    for arrays in (
        {"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)},
        {
            "mu": x.mean(0),
            "sigma": np.cov(x, rowvar=False),
            "n": 20,
            "mode": "clean",
            "weights_sha256": "0" * 64,
            "sum": x.sum(0),
            "sum_outer": x.T @ x,
        },
        {"arr_0": rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)},
    ):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        out.append(buf.getvalue())
    return out


def _fuzz_decoders_against_pillow(corpus: str, workdir: str) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from pathlib import Path

    import pillow_fuzz

    for name, seed in pillow_fuzz.seeds(max_bytes=1 << 16):
        with open(os.path.join(corpus, name.replace("/", "__")), "wb") as f:
            f.write(seed)
    path = Path(workdir) / "input"

    def one(data: bytes) -> None:
        verdict = pillow_fuzz.judge(path, data)
        if verdict not in ("same pixels", "both refuse", "stricter"):
            raise AssertionError(f"decoder disagrees with Pillow: {verdict}")

    atheris.Setup([sys.argv[0], corpus, *sys.argv[1:]], one)
    atheris.Fuzz()


def main() -> None:
    target = sys.argv.pop(1)
    workdir = tempfile.mkdtemp(prefix="fidrs-fuzz-")
    corpus = os.path.join(workdir, "corpus")
    os.mkdir(corpus)
    if target == "pillow":
        _fuzz_decoders_against_pillow(corpus, workdir)
        return
    seeds = _checkpoints() if target == "checkpoint" else _npz_files()
    for i, seed in enumerate(seeds):
        with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
            f.write(seed)
    path = os.path.join(workdir, "input.pth" if target == "checkpoint" else "input.npz")

    def one(data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
        try:
            if target == "checkpoint":
                load_state_dict(path)
            else:
                source = resolve_source(path)
                if type(source).__name__ == "StatsFile":
                    Stats.load(path)
        except (WeightsError, InvalidInputError):
            pass

    atheris.Setup([sys.argv[0], corpus, *sys.argv[1:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
