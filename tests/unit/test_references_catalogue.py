"""The catalogue of published references (data like models/) and fetching them: against a server on 127.0.0.1
standing in for the publishers (good, corrupt, too large, redirected, interrupted, slow, absent)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import pickle
import socket
import threading
import time
from pathlib import Path

import fidrs
import numpy as np
import pytest
from fidrs.errors import InvalidInputError, ReferenceHashMismatchError, ReferenceUnavailableError
from fidrs.references import FORMATS, cache_path, fetch, fetching, info, list_references, lookup, resolve, table
from fidrs.references import catalogue as catalogue_module

# --- the catalogue as data -------------------------------------------------------------------------------------


def test_every_reference_the_issue_names_is_catalogued():
    names = set(list_references())
    wanted = {f"adm/imagenet-{s}" for s in (64, 128, 256, 512)} | {
        "adm/lsun-bedroom-256",
        "adm/lsun-cat-256",
        "adm/lsun-horse-256",
        "edm/cifar10-32",
        "edm/ffhq-64",
        "edm/afhqv2-64",
        "edm/imagenet-64",
        "edm2/img64",
        "edm2/img512",
        "ttur/cifar10-train",
        "clean-fid/cifar10-train-32-clean",
        "clean-fid/ffhq-trainval70k-1024-legacy_tensorflow",
        "clean-fid/afhq_cat-train-512-legacy_pytorch-kid",
    }
    assert wanted <= names, sorted(wanted - names)


def test_manifest_entries_are_consistent():
    variables = set()
    for name in list_references():
        e = lookup(name)
        assert e.format in FORMATS and e.max_bytes > 0 and e.licence and e.citation and e.dataset
        assert e.url.startswith(("https://", "http://")) and e.url.rsplit("/", 1)[1] == e.filename
        assert e.sha256 is None  # no publisher gives one: recorded on first download, never invented
        for spec in e.statistics:
            backbone = fidrs.backbones.get(spec.backbone)
            # EDM2's fd_dinov2 needs the `edm2` DINOv2 mode (issue 27 item 4, built alongside); every other
            # mode must be one the backbone has today.
            assert spec.mode in backbone.modes or (spec.backbone, spec.mode) == ("dinov2-vitl14", "edm2"), spec
        variable = fidrs.config.reference_variable(name)
        assert variable not in variables
        variables.add(variable)
        for alias in e.aliases:
            assert alias not in catalogue_module.entries() and lookup(alias) is e


def test_size_caps_hold_what_each_file_declares():
    stats = 2 * (2048 + 2048**2) * 8  # mu, sigma, mu_s, sigma_s as float64 at most
    for size in (64, 128, 256, 512):
        e = lookup(f"adm/imagenet-{size}")
        assert e.images == 10000 and e.max_bytes >= 10000 * size * size * 3 + stats
    assert lookup("edm2/img512").max_bytes >= ((2048 + 2048**2) + (1024 + 1024**2)) * 8
    kid = lookup("clean-fid/afhq_cat-train-512-clean-kid")
    assert kid.n == 5153 and kid.max_bytes >= 5153 * 2048 * 8


@pytest.mark.parametrize(
    ("name", "file"),
    [
        # The file names clean-fid's docs/datasets.md shows its statistics written to, and features.py's formula.
        ("clean-fid/cifar10-train-32-legacy_tensorflow", "cifar10_legacy_tensorflow_train_32.npz"),
        ("clean-fid/ffhq-trainval70k-1024-clean", "ffhq_clean_trainval70k_1024.npz"),
        ("clean-fid/ffhq-trainval-256-legacy_pytorch", "ffhq_legacy_pytorch_trainval_256.npz"),
        ("clean-fid/brecahad-train-512-clean-kid", "brecahad_clean_train_512_kid.npz"),
    ],
)
def test_clean_fid_urls_follow_its_own_formula(name, file):
    e = lookup(name)
    assert e.url == f"https://www.cs.cmu.edu/~clean-fid/stats/{file}"
    mode = {"clean": "clean", "legacy_tensorflow": "tf1", "legacy_pytorch": "pytorch-fid"}[
        name.split("-")[-2 if name.endswith("-kid") else -1]
    ]
    assert [s.mode for s in e.statistics] == [mode]


def test_names_resolve_canonical_alias_or_unique_short():
    assert lookup("imagenet-256").name == "adm/imagenet-256"
    assert lookup("cifar10-train-32").name == "clean-fid/cifar10-train-32-clean"  # clean-fid's default mode
    assert lookup("clean-fid/cifar10-train-32").name == "clean-fid/cifar10-train-32-clean"
    assert lookup("img512").name == "edm2/img512"
    with pytest.raises(InvalidInputError, match="'imagenet-64' is ambiguous: adm/imagenet-64, edm/imagenet-64"):
        lookup("imagenet-64")
    with pytest.raises(InvalidInputError, match="unknown reference 'cifar1'; did you mean .*edm/cifar10-32"):
        lookup("cifar1")


def test_info_and_table_describe_provenance_and_cache_state(cache):
    data = info("ref:edm2/img512")
    assert data["sha256_source"] == "recorded on first download" and data["state"] == "not downloaded"
    assert [(s["label"], s["backbone"], s["mode"]) for s in data["statistics"]] == [
        ("fid", "inception", "tf1"),
        ("fd_dinov2", "dinov2-vitl14", "edm2"),
    ]
    assert data["variable"] == "FIDRS_REF_EDM2_IMG512" and data["path"].startswith(str(cache))
    assert "adm/imagenet-256" in table() and "inception tf1" in table("adm")


# --- fetching --------------------------------------------------------------------------------------------------

D = 8
# The catalogue's statistics are the Inception's (pool3, 2048-d) or, for EDM2's fd_dinov2, DINOv2 ViT-L/14's
# (1024-d): a file of another size is not the published one (fidrs refuses statistics of a size their backbone
# cannot give), so the stand-ins for them have these sizes.
POOL3, DINOV2_L = 2048, 1024


def _mu_sigma(seed=0, d=POOL3) -> dict:
    x = np.random.default_rng(seed).normal(size=(32, d))
    return {"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)}


def _edm_file(path: Path, seed=0) -> bytes:
    np.savez(path, **_mu_sigma(seed))  # EDM fid.py ref
    return path.read_bytes()


class _Publisher(http.server.BaseHTTPRequestHandler):
    """GET /<file>: a file of `files`; /redirect/<file>: 302 to it; /short/<file>: half of it under its full
    length; /trickle/<file>: a byte every 50 ms."""

    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - the http.server API
        parts = self.path.strip("/").split("/")
        try:
            body = self.files.get(parts[-1])
            if body is None:
                self.send_error(404)
            elif parts[0] == "redirect":
                self.send_response(302)
                self.send_header("Location", f"/{parts[-1]}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif parts[0] == "short":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            elif parts[0] == "trickle":
                self.send_response(200)
                self.end_headers()
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture()
def publisher():
    _Publisher.files = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Publisher)
    httpd.daemon_threads = True
    httpd.handle_error = lambda *a: None
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, 10 ms here
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Publisher.files
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("FIDRS_CACHE", str(root))
    for key in list(os.environ):
        if key.startswith("FIDRS_REF_"):
            monkeypatch.delenv(key)
    return root


def _folder(name: str, cache: Path) -> list[str]:
    folder = cache / "references" / name.split("/")[0]
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_good_fetch_is_verified_recorded_and_cached(publisher, cache, tmp_path, monkeypatch):
    url, files = publisher
    files["cifar10-32x32.npz"] = _edm_file(tmp_path / "x.npz")
    monkeypatch.setenv("FIDRS_REF_URL_EDM_CIFAR10_32", f"{url}/cifar10-32x32.npz")
    path = fetch("ref:edm/cifar10-32")
    assert path == cache_path(lookup("edm/cifar10-32")) and path.read_bytes() == files["cifar10-32x32.npz"]
    assert _folder("edm/", cache) == ["cifar10-32x32.npz", "cifar10-32x32.npz.sha256"]  # no .part left
    assert info("edm/cifar10-32")["recorded_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # The cache serves it from now on: no network needed.
    monkeypatch.setenv("FIDRS_REF_URL_EDM_CIFAR10_32", "http://127.0.0.1:9/unreachable")
    ref = resolve("ref:edm/cifar10-32")
    entry = ref.entry("inception")
    p = entry.provenance
    assert (p.tool, p.backbone, p.mode, p.source) == ("edm", "inception", "tf1", "catalogue:edm/cifar10-32")
    assert np.array_equal(entry.mu, _mu_sigma()["mu"]) and any("CC BY-NC-SA" in n for n in ref.notes)


def test_a_redirect_to_the_file_is_followed(publisher, cache, tmp_path):
    url, files = publisher
    files["img512.pkl"] = pickle.dumps({"num_images": 32, "fid": _mu_sigma(1), "fd_dinov2": _mu_sigma(2, DINOV2_L)})
    ref = resolve("ref:edm2/img512", url=f"{url}/redirect/img512.pkl")
    assert ref.entry("inception").provenance.mode == "tf1"
    assert ref.entry("dinov2").provenance.mode == "edm2"  # the catalogue knows what the file does not record
    assert ref.entry("dinov2").n == 32


def test_a_hash_mismatch_deletes_the_download(publisher, cache, tmp_path, monkeypatch):
    url, files = publisher
    files["f.npz"] = _edm_file(tmp_path / "x.npz")
    with pytest.raises(ReferenceHashMismatchError, match=f"pins {'0' * 64}"):
        fetch("edm/cifar10-32", url=f"{url}/f.npz", sha256="0" * 64)
    monkeypatch.setattr(
        fetching, "lookup", lambda name: dataclasses.replace(lookup(name), sha256="ab" * 32)
    )  # as if the publisher gave a hash
    with pytest.raises(ReferenceHashMismatchError, match=f"expected {'ab' * 32}.*it was deleted"):
        fetch("edm/cifar10-32", url=f"{url}/f.npz")
    assert _folder("edm/", cache) == []


def test_a_download_over_the_size_cap_is_abandoned(publisher, cache, tmp_path, monkeypatch):
    url, files = publisher
    files["f.npz"] = _edm_file(tmp_path / "x.npz")
    monkeypatch.setattr(fetching, "lookup", lambda name: dataclasses.replace(lookup(name), max_bytes=1000))
    with pytest.raises(ReferenceUnavailableError, match="over the cap of 1000"):
        fetch("edm/cifar10-32", url=f"{url}/f.npz")
    assert _folder("edm/", cache) == []


def test_an_interrupted_transfer_leaves_nothing(publisher, cache, tmp_path):
    url, files = publisher
    files["f.npz"] = body = _edm_file(tmp_path / "x.npz")
    with pytest.raises(ReferenceUnavailableError, match=f"interrupted after {len(body) // 2} of {len(body)} bytes"):
        fetch("edm/cifar10-32", url=f"{url}/short/f.npz")
    assert _folder("edm/", cache) == []


def test_a_download_past_its_deadline_is_abandoned(publisher, cache, tmp_path):
    url, files = publisher
    files["f.npz"] = _edm_file(tmp_path / "x.npz")
    start = time.monotonic()
    with pytest.raises(ReferenceUnavailableError, match="not finished after 1 s"):
        fetch("edm/cifar10-32", url=f"{url}/trickle/f.npz", deadline_s=1.0)
    assert time.monotonic() - start < 3.0  # 1 s + one 50 ms read + set-up
    assert _folder("edm/", cache) == []


def test_offline_says_how_to_supply_the_file(cache):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ReferenceUnavailableError) as info_:
        fetch("ref:imagenet-256", url=f"http://127.0.0.1:{port}/VIRTUAL_imagenet256_labeled.npz")
    message = str(info_.value)
    for part in (
        "could not download the reference adm/imagenet-256",
        "VIRTUAL_imagenet256_labeled.npz",
        "FIDRS_REF_ADM_IMAGENET_256=PATH",
        str(cache / "references" / "adm"),
    ):
        assert part in message, message


def test_a_download_of_another_layout_is_refused(publisher, cache, tmp_path):
    url, files = publisher
    np.savez_compressed(tmp_path / "kid.npz", feats=np.zeros((4, D), np.float32))
    files["kid.npz"] = (tmp_path / "kid.npz").read_bytes()
    with pytest.raises(ReferenceHashMismatchError, match="is not the published edm/cifar10-32 .*statistics need 'mu'"):
        fetch("edm/cifar10-32", url=f"{url}/kid.npz")
    assert _folder("edm/", cache) == []


def test_a_cached_copy_that_changed_is_refused(publisher, cache, tmp_path):
    url, files = publisher
    files["f.npz"] = _edm_file(tmp_path / "x.npz")
    path = fetch("edm/cifar10-32", url=f"{url}/f.npz")
    path.write_bytes(_edm_file(tmp_path / "y.npz", seed=1))  # another file, another mtime
    with pytest.raises(
        ReferenceHashMismatchError,
        match="recorded in .*cifar10-32x32.npz.sha256 when edm/cifar10-32 was first verified",
    ):
        fetch("edm/cifar10-32")


def test_an_unchanged_size_and_mtime_skip_the_hash_unless_verify(publisher, cache, tmp_path):
    url, files = publisher
    files["f.npz"] = _edm_file(tmp_path / "x.npz")
    path = fetch("edm/cifar10-32", url=f"{url}/f.npz")
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 1  # same size
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: looks untouched
    assert fetch("edm/cifar10-32") == path  # trusted from the record (ADM's 7.9 GB batch is not re-hashed)
    with pytest.raises(ReferenceHashMismatchError, match="differs from"):
        fetch("edm/cifar10-32", verify=True)


def test_a_file_put_in_the_cache_by_hand_is_verified_and_recorded(cache, tmp_path):
    path = cache_path(lookup("edm/ffhq-64"))
    path.parent.mkdir(parents=True)
    _edm_file(path)
    assert fetch("edm/ffhq-64") == path
    assert info("edm/ffhq-64")["state"] == "downloaded"
    np.savez(path, mu=np.zeros(3))  # hand-placed and not a reference at all
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(ReferenceHashMismatchError, match="is not the published edm/ffhq-64"):
        fetch("edm/ffhq-64")


def test_a_local_copy_named_by_its_variable_is_used_with_the_catalogue_provenance(cache, tmp_path, monkeypatch):
    local = tmp_path / "mine.npz"
    _edm_file(local)
    monkeypatch.setenv("FIDRS_REF_TTUR_CIFAR10_TRAIN", str(local))
    ref = resolve("ref:ttur/cifar10-train")
    assert ref.path == str(local) and ref.entry().provenance.mode == "tf1"
    with pytest.raises(ReferenceHashMismatchError, match="FIDRS_REF_SHA256_TTUR_CIFAR10_TRAIN pins"):
        monkeypatch.setenv("FIDRS_REF_SHA256_TTUR_CIFAR10_TRAIN", "1" * 64)
        fetch("ttur/cifar10-train")
    monkeypatch.delenv("FIDRS_REF_SHA256_TTUR_CIFAR10_TRAIN")
    monkeypatch.setenv("FIDRS_REF_TTUR_CIFAR10_TRAIN", str(tmp_path / "missing.npz"))
    with pytest.raises(ReferenceUnavailableError, match="missing.npz: no such file .from FIDRS_REF_TTUR_CIFAR10_TRAIN"):
        fetch("ttur/cifar10-train")
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    monkeypatch.setenv("FIDRS_REF_TTUR_CIFAR10_TRAIN", str(fifo))
    with pytest.raises(InvalidInputError, match="a FIFO, not a regular file"):
        fetch("ttur/cifar10-train")


def test_an_adm_batch_fetched_keeps_its_images_for_later(publisher, cache, tmp_path):
    url, files = publisher
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "b.npz", arr_0=images, mu_s=np.zeros(2), sigma_s=np.eye(2), **_mu_sigma())
    files["VIRTUAL_imagenet256_labeled.npz"] = (tmp_path / "b.npz").read_bytes()
    ref = resolve("ref:imagenet-256", url=f"{url}/VIRTUAL_imagenet256_labeled.npz")
    assert ref.entry("inception").provenance.source == "catalogue:adm/imagenet-256"
    assert np.array_equal(ref.images.load(), images)


def test_a_malformed_pin_is_refused_by_name(cache):
    with pytest.raises(InvalidInputError, match="sha256= must be 64 hex digits"):
        fetch("edm/cifar10-32", sha256="xyz")
