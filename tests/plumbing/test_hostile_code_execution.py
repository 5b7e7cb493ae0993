"""Class 1 of the hardening issue: no file fidrs reads can run code. Every pickle record of a checkpoint goes
through an allow-list unpickler; each test plants a payload that would create a marker file if it ran."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import zipfile

import pytest
from conftest import run_cli, write_images
from fidrs.checkpoint import LEGACY_MAGIC_NUMBER, load_state_dict
from fidrs.errors import WeightsError


class _Payload:
    """Pickles to `os.system("touch MARKER")`: runs on load by a plain unpickler."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _legacy(records: list) -> bytes:
    """A legacy-format file: the five pickled records in order (no tensor data: loading must stop first)."""
    out = io.BytesIO()
    for record in records:
        pickle.dump(record, out, protocol=2)
    return out.getvalue()


def _plain_records(payload):
    good = [LEGACY_MAGIC_NUMBER, 1001, {"little_endian": True, "protocol_version": 1001}, {}, []]
    for slot in range(5):
        records = list(good)
        records[slot] = payload
        yield slot, _legacy(records)


@pytest.mark.parametrize("slot", range(5), ids=["magic", "protocol", "sys_info", "state_dict", "keys"])
def test_payload_in_any_legacy_record_is_refused_without_running(tmp_path, slot):
    marker = tmp_path / "ran"
    data = dict(_plain_records(_Payload(marker)))[slot]
    path = tmp_path / "evil.pth"
    path.write_bytes(data)
    with pytest.raises(WeightsError, match="disallowed") as info:
        load_state_dict(path)
    assert str(path) in str(info.value)
    assert not marker.exists(), "the payload ran"


def test_payload_in_zip_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": _Payload(marker)}, protocol=2))
    with pytest.raises(WeightsError, match="disallowed"):
        load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["--weights", "FIDRS_WEIGHTS", "cache"])
def test_cli_refuses_a_crafted_checkpoint_from_every_source(tmp_path, how):
    """Through the argument, the environment and a file planted in the cache: exit 2, the file named, no code
    run. (A planted cache file is also refused for its hash, before it is ever unpickled.)"""
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(dict(_plain_records(_Payload(marker)))[0])
    images = write_images(tmp_path / "imgs", 2)
    env = {"FIDRS_CACHE": str(tmp_path / "cache"), "FIDRS_WEIGHTS": ""}
    args = ["score", str(images), str(images)]
    if how == "--weights":
        args += ["--weights", str(evil)]
    elif how == "FIDRS_WEIGHTS":
        env["FIDRS_WEIGHTS"] = str(evil)
    else:
        from fidrs.backbones import get

        (tmp_path / "cache").mkdir()
        planted = tmp_path / "cache" / get("inception").weights.filename
        shutil.copy(evil, planted)
        evil = planted
    out = run_cli(*args, env=env)
    assert out.returncode == 2, out.stderr
    assert str(evil) in out.stderr
    assert "Traceback" not in out.stderr
    assert not marker.exists()


def test_tensor_view_outside_its_storage_is_refused(tmp_path):
    """A crafted stride would make numpy's as_strided read memory beyond the storage."""
    from fidrs import checkpoint

    storage = checkpoint._Storage(checkpoint.np.dtype("float32"), 4)
    storage.data = checkpoint.np.zeros(4, checkpoint.np.float32)
    view = checkpoint._TensorRef(storage, 0, (4,), (1000,))
    with pytest.raises(WeightsError, match="reaches element"):
        view.materialise()
    with pytest.raises(WeightsError, match="negative"):
        checkpoint._TensorRef(storage, -1, (2,), (1,)).materialise()
