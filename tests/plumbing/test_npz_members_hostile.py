"""Hostile `.npz` members, read by every path: `fidrs score` on a plain mu/sigma file (the reference readers), on
a fidrs-format file (any fidrs metadata member, e.g. `version`: `Stats.load`), on clean-fid's KID `feats`, on
TF-GAN `pool_3` features and on an ADM batch; `fidrs.Stats.load` and `fidrs.score` in the API.

- A zip bomb: 9 MB of deflated zeros whose sigma declares 2 GiB. Both statistics paths read members with one
  reader (`references.arrays.read_npz_members`) under one cap (`MAX_STATS_MEMBER_BYTES`, 1 GiB), the `.npy`
  header first: refused before anything is inflated. (The fidrs-format path used to go through `np.load` with a
  16 GiB cap: exit 2 only after 7.8 s and a 2.1 GB peak.)
- Zip members that zipfile fails on (encrypted, a compression method it does not read, damaged deflate, bzip2 or
  LZMA data, a bad CRC, a damaged local header): InvalidInputError (exit 2) naming the file, the member and the
  reason, never a traceback (an encrypted member raised RuntimeError, a damaged LZMA one LZMAError: exit 3).
- Two members of one name (`mu` and `mu.npy`, or one name stored twice): numpy (pytorch-fid) reads `mu`, the
  mu/sigma reader read `mu.npy`, so the FID depended on the reader (0.000000 vs 6.805778, both exit 0). Refused,
  naming the file and the name, on every path."""

from __future__ import annotations

import functools
import io
import os
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import fidrs
import numpy as np
import pytest
from cli_in_process import run_cli_here
from fidrs.errors import InvalidInputError
from fidrs.files import read_npz
from fidrs.references import arrays, read_reference, readers
from measured_cli import cli_measured

D = 8
# The bomb's refusal reads its headers and no data: measured 0.003 s in process and 0.4 s for a fresh interpreter
# (2 shared cores, with the launcher), where the unfixed readers spent 1.9 to 8.6 s (Stats.load) and 5 to 7.8 s
# (the CLI, fidrs-format path) inflating 2 GiB. The bounds leave a loaded runner room (300× and 10×).
API_SECONDS = 1.0
CLI_SECONDS = 4.0
# Memory is the sharper witness: an interpreter with fidrs imported peaks near 90 MB; the unfixed paths 2.05 GiB
# (numpy's allocation, tracemalloc) and 2.1 GB (the CLI's RSS).
API_PEAK_BYTES = 64 << 20  # numpy's and Python's allocations (tracemalloc)
CLI_PEAK_BYTES = 256 << 20  # the whole child process (ru_maxrss through wait4)
BOMB_BYTES = 2 << 30  # what the bomb's sigma declares: twice the cap


def _npy(array: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, array)
    return b.getvalue()


def _statistics(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    a = g.standard_normal((D, 2 * D))
    return g.standard_normal(D), a @ a.T / (2 * D)


# An ADM batch's layout (mu, sigma beside the sFID statistics mu_s, sigma_s) implies the Inception's statistics,
# pool3's 2048: fidrs refuses them at another size. Σ is diagonal, so each compression packs its 32 MiB fast.
POOL3 = 2048


def _inception_statistics(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.standard_normal(POOL3), np.diag(g.uniform(0.5, 1.5, POOL3))


def _features(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((20, D)).astype(np.float32)


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytearray:
    """An archive of `members` (name, bytes) in order, a name possibly twice (zip allows it): a fresh copy, which
    the caller may damage."""
    return bytearray(_zipped(tuple(members), method))


@functools.lru_cache(maxsize=32)
def _zipped(members: tuple[tuple[str, bytes], ...], method: int) -> bytes:
    """Each archive compressed once per process: the ADM layout's 32 MiB Σ took ~7 s of lzma, deflate and bzip2
    over this module's tests, compressed again for each one."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        with zipfile.ZipFile(buf, "w", method) as z:
            for name, data in members:
                z.writestr(name, data)
    return buf.getvalue()


# Offsets of the fields patched, in a local file header and in a central directory entry.
_LOCAL = {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<L"), "csize": (18, "<L"), "usize": (22, "<L")}
_CENTRAL = {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<L"), "csize": (20, "<L"), "usize": (24, "<L")}


def _headers(data: bytearray, member: str) -> tuple[int, int]:
    """(local header offset, central directory entry offset) of the (last) member `member`."""
    found = None
    pos = zipfile.ZipFile(io.BytesIO(bytes(data))).start_dir
    while data[pos : pos + 4] == b"PK\x01\x02":
        name, extra, comment = struct.unpack_from("<HHH", data, pos + 28)
        if data[pos + 46 : pos + 46 + name] == member.encode():
            found = (struct.unpack_from("<L", data, pos + 42)[0], pos)
        pos += 46 + name + extra + comment
    assert found is not None, member
    return found


def _patch(data: bytearray, member: str, **fields) -> None:
    """Set header fields of `member` in both its local header and its central directory entry (`flags=("|", 1)`
    ors the bits in)."""
    local, central = _headers(data, member)
    for start, offsets in ((local, _LOCAL), (central, _CENTRAL)):
        for field, value in fields.items():
            offset, fmt = offsets[field]
            if isinstance(value, tuple):
                value = struct.unpack_from(fmt, data, start + offset)[0] | value[1]
            struct.pack_into(fmt, data, start + offset, value)


def _payload(data: bytearray, member: str) -> tuple[int, int]:
    """(start, length) of `member`'s compressed data."""
    local, _ = _headers(data, member)
    name, extra = struct.unpack_from("<HH", data, local + 26)
    return local + 30 + name + extra, struct.unpack_from("<L", data, local + 18)[0]


def _invert(data: bytearray, member: str, length: int = 40, at: float = 0.5) -> None:
    start, size = _payload(data, member)
    i = start + int(size * at)
    data[i : i + length] = bytes(b ^ 0xFF for b in data[i : i + length])


# --- the layouts: one file of each format, its target member the one made hostile ---------------------------


def _layout(kind: str) -> tuple[list[tuple[str, bytes]], str]:
    members, target = _layout_of(kind)
    return list(members), target


@functools.cache
def _layout_of(kind: str) -> tuple[tuple[tuple[str, bytes], ...], str]:
    members, target = _new_layout(kind)
    return tuple(members), target  # made once per process (the ADM layout's Σ is 32 MiB)


def _new_layout(kind: str) -> tuple[list[tuple[str, bytes]], str]:
    mu, sigma = _inception_statistics() if kind == "adm" else _statistics()
    statistics = [("mu.npy", _npy(mu)), ("sigma.npy", _npy(sigma))]
    if kind == "mu-sigma":
        return statistics, "sigma.npy"
    if kind == "fidrs":  # a fidrs metadata member: read by Stats.load
        return [*statistics, ("version.npy", _npy(np.array(3)))], "sigma.npy"
    if kind == "adm":
        spatial = [("mu_s.npy", _npy(np.zeros(3))), ("sigma_s.npy", _npy(np.eye(3)))]
        return [*statistics, *spatial, ("arr_0.npy", _npy(np.zeros((2, 4, 4, 3), np.uint8)))], "sigma.npy"
    if kind == "kid":
        return [("feats.npy", _npy(_features()))], "feats.npy"
    assert kind == "features"
    return [("pool_3.npy", _npy(_features()))], "pool_3.npy"


LAYOUTS = ["mu-sigma", "fidrs", "adm", "kid", "features"]
STATISTICS_LAYOUTS = ["mu-sigma", "fidrs", "adm"]  # those Stats.load reads


@pytest.fixture()
def ref(tmp_path):
    path = tmp_path / "ref.npz"
    mu, sigma = _statistics(1)
    np.savez(path, mu=mu, sigma=sigma)
    return str(path)


def _assert_refused(out, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr, out.stderr
    assert out.stdout == ""
    assert len([line for line in out.stderr.splitlines() if line.startswith("fidrs: error:")]) == 1, out.stderr
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)


# --- 1. the zip bomb ------------------------------------------------------------------------------------------


def _deflated_zeros(header: bytes, zeros: int) -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32) of `header` followed by `zeros` zero bytes, built in well under a second: after
    a full flush the compressor starts afresh, so every 16 MiB block of zeros compresses to the same bytes (what
    zlib would write for the whole 2 GiB, in 9 MB), and the CRC is computed over the real bytes."""
    chunk = bytes(1 << 24)
    assert zeros % len(chunk) == 0
    co = zlib.compressobj(1, zlib.DEFLATED, -15)
    head = co.compress(header) + co.flush(zlib.Z_FULL_FLUSH)
    first = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    assert co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH) == block  # the stream repeats from here
    count = zeros // len(chunk)
    stream = head + first + block * (count - 1) + co.flush()
    crc = zlib.crc32(header)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    return stream, crc


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """{layout: path} of ~9 MB `.npz` files whose deflated sigma declares (8, 2^25) float64, 2 GiB of zeros (a
    valid archive: its CRC and sizes are right): a plain mu/sigma file, a fidrs-format one (`version`), and a
    fidrs-format one whose bomb is the member `sigma` (numpy's other name for `sigma.npy`)."""
    folder = tmp_path_factory.mktemp("bombs")
    header = io.BytesIO()
    shape = (D, BOMB_BYTES // (8 * D))
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    stream, crc = _deflated_zeros(header.getvalue(), BOMB_BYTES)
    paths = {}
    for layout, sigma_name in (("mu-sigma", "sigma.npy"), ("fidrs", "sigma.npy"), ("fidrs-bare-name", "sigma")):
        members = [("mu.npy", _npy(np.zeros(D)))]
        if layout != "mu-sigma":
            members.append(("version.npy", _npy(np.array(3))))
        members.append((sigma_name, stream))  # stored as written, then labelled deflate with the real size
        data = _zip(members)
        _patch(data, sigma_name, method=zipfile.ZIP_DEFLATED, crc=crc, usize=len(header.getvalue()) + BOMB_BYTES)
        path = folder / f"bomb_{layout}.npz"
        path.write_bytes(data)
        paths[layout] = str(path)
    assert os.path.getsize(paths["fidrs"]) < 16 << 20
    info = zipfile.ZipFile(paths["fidrs"]).getinfo("sigma.npy")
    assert info.file_size > 1 << 30 and info.compress_type == zipfile.ZIP_DEFLATED  # the cap, 1 GiB
    return paths


def _bomb_refusal(layout: str) -> str:
    member = "sigma" if layout == "fidrs-bare-name" else "sigma.npy"
    return f"member '{member}': {(D, BOMB_BYTES // (8 * D))} float64 is {BOMB_BYTES} bytes, over the limit of {1 << 30}"


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="os.wait4 (a child's own peak memory) is POSIX")
@pytest.mark.parametrize("layout", ["mu-sigma", "fidrs", "fidrs-bare-name"])
def test_cli_refuses_a_zip_bomb_from_its_header(tmp_path, bombs, ref, layout):
    out, seconds, peak = cli_measured(tmp_path, "score", bombs[layout], ref)
    _assert_refused(out, bombs[layout], _bomb_refusal(layout))
    assert seconds < CLI_SECONDS, seconds
    assert peak < CLI_PEAK_BYTES, f"peak RSS {peak >> 20} MiB"


@pytest.mark.parametrize("api", ["Stats.load", "score"])
@pytest.mark.parametrize("layout", ["mu-sigma", "fidrs", "fidrs-bare-name"])
def test_api_refuses_a_zip_bomb_from_its_header(bombs, ref, layout, api):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidInputError) as refused:
            fidrs.Stats.load(bombs[layout]) if api == "Stats.load" else fidrs.score(bombs[layout], ref)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert message.startswith(bombs[layout]) and _bomb_refusal(layout) in message, message
    assert seconds < API_SECONDS, seconds
    assert peak < API_PEAK_BYTES, f"peak {peak >> 20} MiB"


def test_every_statistics_reader_has_the_one_cap(tmp_path):
    """The cap is defined once (`references.arrays`), and `files.read_npz` (fidrs' files) applies it by default:
    a member one byte over it is refused by its header, one at it is read by neither path's limit."""
    assert readers.MAX_STATS_MEMBER_BYTES is arrays.MAX_STATS_MEMBER_BYTES == 1 << 30
    path = tmp_path / "over.npz"
    header = io.BytesIO()
    over = (arrays.MAX_STATS_MEMBER_BYTES // 8 + 1,)
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": over})
    path.write_bytes(_zip([("mu.npy", header.getvalue()), ("version.npy", _npy(np.array(3)))]))
    with pytest.raises(InvalidInputError, match=f"member 'mu.npy': .* over the limit of {1 << 30}"):
        read_npz(path, keys=["mu"])
    with pytest.raises(InvalidInputError, match=f"member 'mu.npy': .* over the limit of {1 << 30}"):
        fidrs.Stats.load(path)


# --- 2. members zipfile fails on ------------------------------------------------------------------------------


def _encrypted(data, member):
    _patch(data, member, flags=("|", 0x1))


def _strongly_encrypted(data, member):
    _patch(data, member, flags=("|", 0x41))


def _patched_data(data, member):
    _patch(data, member, flags=("|", 0x20))  # "compressed patched data": zipfile's NotImplementedError


def _method(number):
    return lambda data, member: _patch(data, member, method=number)


def _bad_crc(data, member):
    local, _ = _headers(data, member)
    _patch(data, member, crc=struct.unpack_from("<L", data, local + 14)[0] ^ 1)


def _cut_stream(data, member):
    """The compressed size shrunk in both headers: the data ends before its end-of-stream marker."""
    local, _ = _headers(data, member)
    _patch(data, member, csize=struct.unpack_from("<L", data, local + 18)[0] // 2)


def _renamed_local(data, member):
    local, _ = _headers(data, member)
    data[local + 30] ^= 0x20  # the local header's copy of the name: zipfile's "File name in directory ... differ"


def _no_local_header(data, member):
    local, _ = _headers(data, member)
    data[local + 2 : local + 4] = b"\x07\x07"  # "PK" kept: the file still looks like a zip


CASES = {  # name: (compression, damage, what the message says)
    "encrypted": (zipfile.ZIP_DEFLATED, _encrypted, "encrypted"),
    "encrypted-stored": (zipfile.ZIP_STORED, _encrypted, "encrypted"),
    "strong-encryption": (zipfile.ZIP_DEFLATED, _strongly_encrypted, "encrypted"),
    "lzma-damaged": (zipfile.ZIP_LZMA, _invert, "damaged (LZMAError"),
    "bzip2-damaged": (zipfile.ZIP_BZIP2, _invert, "damaged ("),
    "deflate-damaged": (zipfile.ZIP_DEFLATED, _invert, "damaged ("),
    "deflate-cut": (zipfile.ZIP_DEFLATED, _cut_stream, "damaged (BadZipFile: Bad CRC-32"),
    "lzma-cut": (zipfile.ZIP_LZMA, _cut_stream, "damaged (BadZipFile: Bad CRC-32"),
    "stored-bad-crc": (zipfile.ZIP_STORED, _bad_crc, "damaged (BadZipFile: Bad CRC-32"),
    "deflate-bad-crc": (zipfile.ZIP_DEFLATED, _bad_crc, "damaged (BadZipFile: Bad CRC-32"),
    "method-99": (zipfile.ZIP_DEFLATED, _method(99), "compressed with method 99 (unknown), which is not read"),
    "deflate64": (zipfile.ZIP_DEFLATED, _method(9), "compressed with method 9 (deflate64), which is not read"),
    "patched-data": (zipfile.ZIP_DEFLATED, _patched_data, "not a readable .npz archive (NotImplementedError"),
    "local-name-differs": (zipfile.ZIP_DEFLATED, _renamed_local, "not a readable .npz archive (BadZipFile"),
    "no-local-header": (zipfile.ZIP_DEFLATED, _no_local_header, "not a readable .npz archive (BadZipFile"),
    "stored-no-local-header": (zipfile.ZIP_STORED, _no_local_header, "damaged (no local header"),
}


def _hostile(tmp_path, layout: str, case: str) -> tuple[str, str, str]:
    """(path, target member, reason) of a file of `layout` whose target member is damaged as `case` says."""
    members, target = _layout(layout)
    method, damage, reason = CASES[case]
    data = _zip(members, method)
    damage(data, target)
    path = tmp_path / f"{layout}_{case}.npz"
    path.write_bytes(data)
    return str(path), target, reason


METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def test_the_hostile_members_are_valid_before_their_damage(tmp_path, ref):
    """Each compression the cases use reads and scores, on every path, before it is damaged (numpy agrees)."""
    mu, sigma = _inception_statistics(1)
    np.savez(tmp_path / "inception.npz", mu=mu, sigma=sigma)  # what an ADM batch is compared with
    for method in METHODS:
        for layout in LAYOUTS:
            members, _ = _layout(layout)
            path = tmp_path / f"{layout}_{method}.npz"
            path.write_bytes(_zip(members, method))
            assert np.isfinite(fidrs.score(str(path), str(tmp_path / "inception.npz") if layout == "adm" else ref))
            if layout in STATISTICS_LAYOUTS:
                with np.load(path) as f:
                    assert np.array_equal(fidrs.Stats.load(path).sigma, f["sigma"])


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", list(CASES))
def test_cli_names_the_file_member_and_reason_of_a_bad_member(tmp_path, ref, capsys, layout, case):
    path, member, reason = _hostile(tmp_path, layout, case)
    _assert_refused(run_cli_here(capsys, "score", path, ref), path, f"member '{member}'", reason)


@pytest.mark.parametrize("case", list(CASES))
def test_api_names_the_file_member_and_reason_of_a_bad_member(tmp_path, ref, case):
    for layout in LAYOUTS:
        path, member, reason = _hostile(tmp_path, layout, case)
        with pytest.raises(InvalidInputError) as refused:
            fidrs.score(path, ref)
        assert str(refused.value).startswith(f"{path}: member '{member}'") and reason in str(refused.value)
        if layout in STATISTICS_LAYOUTS:
            with pytest.raises(InvalidInputError) as refused:
                fidrs.Stats.load(path)
            assert str(refused.value).startswith(f"{path}: member '{member}'") and reason in str(refused.value)


@pytest.mark.parametrize(
    ("layout", "case"), [("mu-sigma", "encrypted"), ("kid", "lzma-damaged"), ("fidrs", "bzip2-damaged")]
)
def test_a_fresh_cli_exits_2_on_a_bad_member(tmp_path, ref, layout, case):
    """The report's reproductions, in a fresh interpreter (as a user runs it): exit 2, one line, no traceback."""
    path, member, reason = _hostile(tmp_path, layout, case)
    out, _, _ = cli_measured(tmp_path, "score", path, ref)
    _assert_refused(out, path, f"member '{member}'", reason)


@pytest.mark.parametrize("method", METHODS)
def test_randomly_damaged_archives_are_read_or_refused_never_crash(tmp_path, method):
    """Whatever zipfile or its decompressors raise on a damaged archive (a seeded sample of byte changes in the
    headers, the data and the directory, for each compression): every path reads the file or refuses it with
    InvalidInputError naming it, never another exception."""
    rng = np.random.default_rng(method)
    for layout in ("mu-sigma", "fidrs", "kid"):
        members, target = _layout(layout)
        base = _zip(members, method)
        start, size = _payload(base, target)
        for trial in range(60):
            data = bytearray(base)
            if trial % 2:  # a run of random bytes in the member's compressed data
                i, n = start + int(rng.integers(0, size)), int(rng.integers(1, 40))
                data[i : i + n] = rng.integers(0, 256, len(data[i : i + n]), dtype=np.uint8).tobytes()
            else:  # a few bytes anywhere: headers, data, the directory
                for i in rng.integers(0, len(data), rng.integers(1, 6)):
                    data[i] = rng.integers(0, 256)
            path = tmp_path / f"{layout}_{trial}.npz"
            path.write_bytes(data)
            for read in (read_reference, fidrs.Stats.load) if layout != "kid" else (read_reference,):
                try:
                    read(str(path))
                except InvalidInputError as e:
                    assert str(e).startswith(str(path)), str(e)


# --- 3. two members of one name -------------------------------------------------------------------------------


def _ambiguous(tmp_path, layout: str, names: tuple[str, str]) -> str:
    """A `layout` file holding two members that numpy names alike (`names`), of different arrays."""
    members, _ = _layout(layout)
    (mu2, sigma2), feats2 = _inception_statistics(2) if layout == "adm" else _statistics(2), _features(2)
    other = {"mu": mu2, "sigma": sigma2, "feats": feats2, "pool_3": feats2}
    first, second = names
    key = first[:-4] if first.endswith(".npy") else first
    members = [(name, data) for name, data in members if name not in names]
    members += [(first, _npy(other[key] + 1)), (second, _npy(other[key]))]
    path = tmp_path / f"{layout}_{first}_{second}.npz".replace("/", "_")
    path.write_bytes(_zip(members))
    return str(path)


AMBIGUOUS = [  # (layout, the two member names, the name both answer to)
    ("mu-sigma", ("mu.npy", "mu"), "mu"),
    ("mu-sigma", ("sigma", "sigma.npy"), "sigma"),
    ("mu-sigma", ("mu.npy", "mu.npy"), "mu"),
    ("fidrs", ("mu.npy", "mu"), "mu"),
    ("fidrs", ("sigma.npy", "sigma"), "sigma"),
    ("fidrs", ("sigma.npy", "sigma.npy"), "sigma"),
    ("adm", ("mu.npy", "mu"), "mu"),
    ("kid", ("feats.npy", "feats"), "feats"),
    ("features", ("pool_3.npy", "pool_3.npy"), "pool_3"),
]


def _assert_ambiguous(message: str, path: str, names: tuple[str, str], key: str) -> None:
    assert message.startswith(path), message
    if names[0] == names[1]:
        assert f"holds the member '{names[0]}' twice" in message, message
    else:
        assert f"members '{names[0]}' and '{names[1]}' both name '{key}'" in message, message
    assert f"'{key}' is ambiguous" in message, message


def test_numpy_reads_another_array_than_a_mu_npy_reader_would():
    """Why these files are refused: numpy lists both members under one name and reads the member `mu`."""
    buf = io.BytesIO(bytes(_zip([("mu.npy", _npy(np.zeros(2))), ("mu", _npy(np.ones(2)))])))
    with np.load(buf) as f:
        assert f.files == ["mu", "mu"] and f["mu"][0] == 1
        assert np.load(io.BytesIO(f.zip.read("mu.npy")))[0] == 0


@pytest.mark.parametrize(("layout", "names", "key"), AMBIGUOUS)
def test_cli_refuses_two_members_of_one_name(tmp_path, ref, capsys, layout, names, key):
    path = _ambiguous(tmp_path, layout, names)
    out = run_cli_here(capsys, "score", path, ref)
    _assert_refused(out, path)
    _assert_ambiguous(out.stderr.removeprefix("fidrs: error: ").strip(), path, names, key)


@pytest.mark.parametrize(("layout", "names", "key"), AMBIGUOUS)
def test_api_refuses_two_members_of_one_name(tmp_path, ref, layout, names, key):
    path = _ambiguous(tmp_path, layout, names)
    with pytest.raises(InvalidInputError) as refused:
        fidrs.score(path, ref)
    _assert_ambiguous(str(refused.value), path, names, key)
    if layout in STATISTICS_LAYOUTS:
        with pytest.raises(InvalidInputError) as refused:
            fidrs.Stats.load(path)
        _assert_ambiguous(str(refused.value), path, names, key)


@pytest.mark.parametrize("layout", ["mu-sigma", "fidrs"])
def test_a_fresh_cli_refuses_the_reported_alias_file(tmp_path, ref, layout):
    """The report's `alias.npz` / `alias_fidrs.npz`: mu.npy, sigma.npy, mu, sigma (plus version)."""
    (mu1, s1), (mu2, s2) = _statistics(1), _statistics(2)
    members = [("mu.npy", _npy(mu1)), ("sigma.npy", _npy(s1)), ("mu", _npy(mu2)), ("sigma", _npy(s2))]
    if layout == "fidrs":
        members.append(("version.npy", _npy(np.array(3))))
    path = tmp_path / f"alias_{layout}.npz"
    path.write_bytes(_zip(members))
    out, _, _ = cli_measured(tmp_path, "score", str(path), ref)
    _assert_refused(out, str(path), "members 'mu.npy' and 'mu' both name 'mu'")


@pytest.mark.parametrize("layout", ["mu-sigma", "fidrs"])
def test_members_without_the_npy_suffix_are_read_as_numpy_reads_them(tmp_path, ref, capsys, layout):
    """A member named `mu` (not `mu.npy`) is numpy's `mu`: both paths read it, and agree with np.load."""
    mu, sigma = _statistics(2)
    members = [("mu", _npy(mu)), ("sigma", _npy(sigma))]
    if layout == "fidrs":
        members.append(("version", _npy(np.array(3))))
    path = tmp_path / f"bare_{layout}.npz"
    path.write_bytes(_zip(members))
    with np.load(path) as f:
        assert np.array_equal(f["mu"], mu)
    loaded = fidrs.Stats.load(path)
    assert np.array_equal(loaded.mu, mu) and np.array_equal(loaded.sigma, sigma)
    np.savez(tmp_path / "plain.npz", mu=mu, sigma=sigma)
    expected = fidrs.score(str(tmp_path / "plain.npz"), ref)
    out = run_cli_here(capsys, "score", str(path), ref)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == pytest.approx(expected, rel=1e-6)


# --- 4. what a review of the reader found next ----------------------------------------------------------------


def _npy_with_shape(array: np.ndarray, shape_text: str) -> bytes:
    """`array`'s .npy bytes with its header's shape replaced by `shape_text` (the header's length kept: the
    difference is taken from, or given to, its space padding)."""
    raw = _npy(array)
    old = repr(array.shape).encode()
    new = shape_text.encode()
    start = raw.index(old)
    raw = raw[:start] + new + raw[start + len(old) :]
    newline = raw.index(b"\n")
    extra = len(new) - len(old)
    return raw[: newline - extra] + raw[newline:] if extra > 0 else raw[:newline] + b" " * -extra + raw[newline:]


@pytest.mark.parametrize("shape_text", ["(-4, -4)", "(-2, -8)", "(0, -5)"])
def test_a_negative_dimension_in_a_header_is_refused_by_name(tmp_path, ref, capsys, shape_text):
    """numpy's header parser takes negative dimensions: (-2, -8) passed as 16 elements, 128 bytes, and the
    reshape that followed raised a ValueError naming no file."""
    mu, sigma = _statistics()
    path = tmp_path / "negative.npz"
    path.write_bytes(_zip([("mu.npy", _npy(mu)), ("sigma.npy", _npy_with_shape(sigma[:4, :4], shape_text))]))
    with pytest.raises(InvalidInputError, match=r"negative\.npz: member 'sigma\.npy': .*negative dimension"):
        fidrs.Stats.load(path)
    _assert_refused(run_cli_here(capsys, "score", str(path), ref), "negative.npz", "negative dimension")


def test_the_members_of_a_statistics_file_are_bounded_together(tmp_path, monkeypatch):
    """Each member within the 1 GiB cap, a statistics file's ten could still ask for 10 GiB: their total is
    bounded too (patched small here; the real bound holds two d×d members at the cap)."""
    assert arrays.MAX_STATS_FILE_BYTES >= 2 * arrays.MAX_STATS_MEMBER_BYTES
    mu, sigma = _statistics()
    path = tmp_path / "s.npz"
    np.savez(path, mu=mu, sigma=sigma)
    assert fidrs.Stats.load(path).mu.shape == (D,)
    monkeypatch.setattr(arrays, "MAX_STATS_FILE_BYTES", sigma.nbytes)
    with pytest.raises(InvalidInputError, match=r"s\.npz: its members mu, sigma declare \d+ bytes together, over"):
        fidrs.Stats.load(path)


def test_a_sigma_wider_than_the_bound_is_refused_whatever_its_dtype(tmp_path, monkeypatch):
    """The 1 GiB member cap holds a float64 Σ of 11,585 features but a uint8 one of 32,768 (8 GiB as float64):
    the width is checked itself (the bound patched to 8 here)."""
    monkeypatch.setattr(fidrs._fidrs, "MAX_FEATURE_WIDTH", 8)
    path = tmp_path / "wide.npz"
    np.savez(path, mu=np.zeros(9, np.uint8), sigma=np.eye(9, dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="wide.npz: statistics of 9 features, over fidrs' limit of 8"):
        fidrs.Stats.load(path)
    np.savez(path, mu=np.zeros(8, np.uint8), sigma=np.eye(8, dtype=np.uint8))
    assert fidrs.Stats.load(path).mu.shape == (8,)


def test_a_newer_format_is_named_before_anything_else_it_changed(tmp_path):
    mu, sigma = _statistics()
    path = tmp_path / "future.npz"
    np.savez(path, mu=mu, sigma=sigma, version=99, backbones=np.array([[1, 2]]))  # a list no fidrs wrote yet
    with pytest.raises(InvalidInputError, match="statistics format 99, written by a newer fidrs"):
        fidrs.Stats.load(path)


def test_a_member_longer_than_its_header_is_not_called_truncated(tmp_path):
    mu, sigma = _statistics()
    path = tmp_path / "long.npz"
    path.write_bytes(_zip([("mu.npy", _npy(mu)), ("sigma.npy", _npy(sigma) + bytes(16))]))
    with pytest.raises(InvalidInputError, match="the data is longer than its header says"):
        fidrs.Stats.load(path)


def test_an_oversized_npy_header_is_refused_without_numpy_s_allow_pickle_advice(tmp_path):
    from fidrs.errors import InvalidInputError
    from fidrs.references import read_reference

    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }" + " " * 50_000 + "\n"
    path = tmp_path / "big-header.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header.encode() + bytes(32))
    with pytest.raises(InvalidInputError, match="header is over 10000 bytes") as refused:
        read_reference(str(path))
    assert "allow_pickle" not in str(refused.value) and "big-header.npy" in str(refused.value)
