"""The allow-list unpickler of EDM2's reference pickles: numpy's own array pickles of every protocol and both
numpy module layouts load; anything else is refused before it runs (each payload would leave a marker file)."""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import types

import numpy as np
import pytest
from fidrs.errors import InvalidInputError
from fidrs.references.unpickler import MAX_OPCODES, UnsafePickleError, loads_numpy_pickle

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def _edm2_layout(rng) -> dict:
    """EDM2 calculate_metrics.py `ref`: num_images (int) and, per metric, float64 mu and sigma (torch .numpy())."""
    x = rng.normal(size=(40, 6))
    y = rng.normal(size=(40, 3))
    return {
        "num_images": 40,
        "fid": {"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)},
        "fd_dinov2": {"mu": y.mean(0), "sigma": np.cov(y, rowvar=False)},
    }


class _OtherNumpyLayout(pickle._Pickler):
    """Writes numpy's globals under the other major version's module path (`numpy.core.…` under numpy 2,
    `numpy._core.…` under numpy 1): the files the other numpy writes."""

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        for a, b in (("numpy._core", "numpy.core"), ("numpy.core", "numpy._core")):
            if module == a or module.startswith(a + "."):
                module = b + module[len(a) :]
                name = name or obj.__qualname__
                if self.proto >= 4:
                    self.save(module)
                    self.save(name)
                    self.write(pickle.STACK_GLOBAL)
                else:
                    self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
                self.memoize(obj)
                return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = save_global  # numpy's Python functions (_frombuffer) are saved from here


def _dumps_other_layout(obj, protocol: int) -> bytes:
    out = io.BytesIO()
    _OtherNumpyLayout(out, protocol=protocol).dump(obj)
    return out.getvalue()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("layout", ["this numpy", "other numpy"])
def test_numpy_pickles_of_every_protocol_and_layout_load_exactly(protocol, layout):
    rng = np.random.default_rng(protocol)
    data = _edm2_layout(rng)
    data["extras"] = [
        np.float64(2.5),
        np.float32(-1.25),
        np.int64(7),
        np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian
        np.asfortranarray(rng.normal(size=(3, 4)).astype(np.float32)),
        np.zeros((0, 5), np.float16),  # empty: bytes() in protocols 0-2
        np.array([True, False]),
        (1, "two", None, b"\x00\xff"),
    ]
    raw = pickle.dumps(data, protocol=protocol) if layout == "this numpy" else _dumps_other_layout(data, protocol)
    if layout == "other numpy":
        assert (b"numpy.core" in raw) != (b"numpy._core" in raw) and raw != pickle.dumps(data, protocol=protocol)
    out = loads_numpy_pickle(raw)
    assert out["num_images"] == 40
    for metric in ("fid", "fd_dinov2"):
        for key in ("mu", "sigma"):
            got, want = out[metric][key], data[metric][key]
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    for got, want in zip(out["extras"], data["extras"]):
        if isinstance(want, tuple):
            assert got == want
        else:
            assert type(got) is type(want) and got.dtype == want.dtype and np.array_equal(got, want)


class _System:
    """Pickles to `os.system("touch MARKER")`: a plain unpickler runs it on load."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reduce_payload_is_refused_without_running_in_every_protocol(tmp_path, protocol):
    marker = tmp_path / "ran"
    raw = pickle.dumps({"num_images": 2, "fid": {"mu": _System(marker)}}, protocol=protocol)
    assert pickle.loads(raw) == {"num_images": 2, "fid": {"mu": 0}} and marker.exists()  # it is a real payload
    marker.unlink()
    with pytest.raises(UnsafePickleError, match=r"names posix\.system, which is not allowed"):
        loads_numpy_pickle(raw)
    assert not marker.exists(), "the payload ran"


def _call(module: str, name: str, *args) -> bytes:
    """Protocol 0 text for `module.name(*args)` with string arguments."""
    text = "".join(f"V{a}\n" for a in args)
    return f"c{module}\n{name}\n({text}tR.".encode()


@pytest.mark.parametrize(
    ("module", "name", "argument"),
    [
        ("builtins", "eval", "open({marker!r}, 'w')"),
        ("builtins", "exec", "open({marker!r}, 'w')"),
        ("__builtin__", "eval", "open({marker!r}, 'w')"),  # the Python 2 name protocols 0-2 allow
        ("os", "system", "touch {marker}"),
        ("subprocess", "getoutput", "touch {marker}"),
        ("numpy.testing._private.utils", "runstring", "open({marker!r}, 'w')"),  # a numpy global that runs code
        ("numpy", "load", "{marker}"),
        ("builtins", "getattr", "x"),
        ("copyreg", "_reconstructor", "x"),
    ],
)
def test_globals_outside_the_allow_list_are_refused_by_name(tmp_path, module, name, argument):
    marker = tmp_path / "ran"
    raw = _call(module, name, argument.format(marker=str(marker)))
    with pytest.raises(UnsafePickleError, match=f"names {module}.{name}, which is not allowed"):
        loads_numpy_pickle(raw)
    assert not marker.exists(), "the payload ran"


class _Crafted:
    """Pickles to whatever reduce tuple it is given (numpy's real globals with crafted arguments)."""

    def __init__(self, *reduce) -> None:
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct under this numpy's module path
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # numpy's _frombuffer
_F8 = np.dtype("f8")


def _array_state(shape, dtype, data, fortran=False):
    return _Crafted(_RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, shape, dtype, fortran, data))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (lambda: _Crafted(_RECONSTRUCT, (np.dtype, (0,), b"b")), "_reconstruct with arguments"),  # not ndarray
        (lambda: _Crafted(_RECONSTRUCT, (np.ndarray, (5,), b"b")), "_reconstruct with arguments"),
        (lambda: _Crafted(np.dtype, ("O", False, True)), "dtype 'O'"),  # object arrays run code on load
        (lambda: _Crafted(np.dtype, ("V8", False, True)), "dtype 'V8'"),
        (lambda: _Crafted(np.dtype, ("U4", False, True)), "dtype 'U4'"),
        (lambda: _Crafted(np.dtype, ("c16", False, True)), "dtype 'c16'"),
        (lambda: _Crafted(np.dtype, ("f8", True, True)), "numpy.dtype with arguments"),
        (lambda: _Crafted(np.dtype, ("f8", False, True), (3, "<", None, ("a",), None, -1, -1, 0)), "structured"),
        (lambda: _Crafted(np.dtype, ("f8", False, True), (3, "!", None, None, None, -1, -1, 0)), "structured"),
        (lambda: _array_state((3,), _F8, [1.0, 2.0, 3.0]), "not bytes"),  # an object array's list state
        (lambda: _array_state((2,), _F8, b"\0" * 8), "declares 16 bytes but holds 8"),
        (lambda: _array_state((2**40, 2**20), _F8, b"\0" * 8), f"declares {2**63} bytes but holds 8"),
        (lambda: _array_state((-1,), _F8, b""), "negative"),
        (lambda: _array_state(((1,),), _F8, b"\0" * 8), "non-integer"),
        (lambda: _array_state((1,), "f8", b"\0" * 8), "dtype is a str"),
        (lambda: _array_state((1,), _F8, b"\0" * 8, fortran=1), "not a boolean"),
        (lambda: _array_state((1,) * 9, _F8, b"\0" * 8), "at most 8 sizes"),
        (lambda: _Crafted(_FROMBUFFER, (b"\0" * 8, _F8, (1,), "K")), "order that is not 'C' or 'F'"),
        (lambda: _Crafted(_FROMBUFFER, (b"\0" * 8, _F8, (4,), "C")), "declares 32 bytes but holds 8"),
    ],
)
def test_numpy_globals_with_arguments_numpy_never_writes_are_refused(payload, reason):
    for protocol in (2, 5):
        raw = pickle.dumps({"num_images": 2, "fid": {"mu": payload()}}, protocol=protocol)
        start = time.monotonic()
        with pytest.raises(UnsafePickleError, match=reason):
            loads_numpy_pickle(raw)
        assert time.monotonic() - start < 1.0  # refused from the header: a huge shape allocated nothing


def test_codecs_and_bytes_stand_ins_take_only_what_protocols_0_to_2_write():
    with pytest.raises(UnsafePickleError, match="_codecs.encode with arguments"):
        loads_numpy_pickle(_call("_codecs", "encode", "abc", "utf-8"))
    assert loads_numpy_pickle(_call("_codecs", "encode", "abc", "latin1")) == b"abc"
    with pytest.raises(UnsafePickleError, match="bytes\\(\\) with arguments"):
        loads_numpy_pickle(_call("__builtin__", "bytes", "9999999999"))


def test_a_stand_in_cannot_be_altered_by_build():
    # BUILD on the dtype stand-in itself (not on what it returns) with slot state: setattr must be refused, so
    # no later load can find it changed.
    raw = b"\x80\x02cnumpy\ndtype\nN}q\x00X\x05\x00\x00\x00_callq\x01Ns\x86b."
    with pytest.raises(UnsafePickleError, match="tries to set '_call'"):
        loads_numpy_pickle(raw)
    assert loads_numpy_pickle(pickle.dumps(np.arange(3.0), protocol=2)).tolist() == [0.0, 1.0, 2.0]


def test_persistent_ids_and_out_of_band_buffers_are_refused():
    class WithIds(pickle.Pickler):
        def persistent_id(self, obj):
            return "storage" if isinstance(obj, bytes) else None

    out = io.BytesIO()
    WithIds(out, protocol=2).dump({"x": b"data"})
    with pytest.raises(UnsafePickleError, match="persistent reference"):
        loads_numpy_pickle(out.getvalue())
    raw = pickle.dumps(pickle.PickleBuffer(bytearray(8)), protocol=5, buffer_callback=lambda b: False)
    with pytest.raises(pickle.UnpicklingError, match="out-of-band"):
        loads_numpy_pickle(raw)


def test_bytearray8_may_not_announce_more_than_the_file_holds():
    raw = b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"\0" * 16 + b"."
    start = time.monotonic()
    with pytest.raises(UnsafePickleError, match=f"announces {1 << 40} bytes in a file of {len(raw)}"):
        loads_numpy_pickle(raw)
    assert time.monotonic() - start < 1.0


def test_endless_containers_stop_at_the_opcode_cap():
    raw = b"\x80\x04" + b"]" * (MAX_OPCODES + 10) + b"."  # a million empty lists on the stack
    with pytest.raises(UnsafePickleError, match=f"more than {MAX_OPCODES} opcodes"):
        loads_numpy_pickle(raw)


def test_deep_and_cyclic_nesting_is_refused():
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(UnsafePickleError, match="more than 32 deep"):
        loads_numpy_pickle(pickle.dumps(deep, protocol=4))
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(UnsafePickleError, match="more than 32 deep"):
        loads_numpy_pickle(pickle.dumps(cycle, protocol=4))


def test_one_memoised_buffer_rebuilt_many_times_exhausts_the_budget():
    # Protocol 2: a 1 MiB string memoised once, then `_codecs.encode(memo, 'latin1')` 100 times. Each call would
    # copy 1 MiB: 100 MiB from a 1 MiB file. The stand-ins may copy 4× the file size + 1 MiB, so it stops at the
    # 6th copy.
    text = b"a" * (1 << 20)
    body = b"\x80\x02]c_codecs\nencode\nq\x000X" + struct.pack("<I", len(text)) + text + b"q\x010"
    body += b"h\x00h\x01X\x06\x00\x00\x00latin1\x86Ra" * 100 + b"."
    with pytest.raises(UnsafePickleError, match="more array data than the file holds"):
        loads_numpy_pickle(body)


def test_damaged_pickles_fail_as_errors_not_crashes():
    good = pickle.dumps(_edm2_layout(np.random.default_rng(0)), protocol=4)
    for cut in (1, 2, 10, len(good) // 2, len(good) - 1):
        with pytest.raises(Exception) as info:  # noqa: PT011 - any error: the reader maps them to one message
            loads_numpy_pickle(good[:cut])
        assert not isinstance(info.value, (SystemExit, KeyboardInterrupt, RecursionError, MemoryError))
    assert issubclass(UnsafePickleError, InvalidInputError)  # exit 2 in the CLI


def _dag(depth: int) -> bytes:
    """`L_0 = []`, `L_k = [L_{k-1}, L_{k-1}]` through the memo: ~8 opcodes a level, 2^depth paths to L_0."""
    ops = bytearray(b"\x80\x04]\x94")  # PROTO 4, EMPTY_LIST, MEMOIZE (memo 0)
    for k in range(depth):
        ops += b"](h" + bytes([k]) + b"h" + bytes([k]) + b"e\x94"  # EMPTY_LIST MARK BINGET k BINGET k APPENDS MEMOIZE
    return bytes(ops + b".")


@pytest.mark.parametrize("depth", [21, 31])
def test_a_dag_of_shared_lists_is_read_once_per_object(depth):
    raw = _dag(depth)
    assert len(raw) < 260
    start = time.monotonic()
    out = loads_numpy_pickle(raw)
    # The work is the graph's size: ~8 opcodes and one list a level, a few milliseconds. Read once per path it
    # was 5 s and 489 MiB at depth 21 and doubles a level (hours and ~500 GB at 31): 2 s leaves room for a busy
    # machine and still fails the per-path read.
    assert time.monotonic() - start < 2.0
    node = out
    for _ in range(depth):
        assert type(node) is list and len(node) == 2 and node[0] is node[1]  # one converted list, shared
        node = node[0]
    assert node == []


def test_a_shared_container_reached_again_too_deep_is_still_refused():
    # X is 20 deep: fine under the root (21), refused where it is reached again 15 levels further down (36), as
    # reading every path refuses it; its shared copy is not taken for already checked.
    x: list = []
    for _ in range(20):
        x = [x]
    deeper: list = [x]
    for _ in range(14):
        deeper = [deeper]
    assert loads_numpy_pickle(pickle.dumps([x], protocol=4)) == [x]
    with pytest.raises(UnsafePickleError, match="more than 32 deep"):
        loads_numpy_pickle(pickle.dumps([x, deeper], protocol=4))
    cycle: list = [x]  # a cycle past a shared container still stops at the depth cap
    cycle.append([cycle, x])
    with pytest.raises(UnsafePickleError, match="more than 32 deep"):
        loads_numpy_pickle(pickle.dumps(cycle, protocol=4))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_shared_references_in_a_valid_file_read_to_equal_values(protocol):
    rng = np.random.default_rng(protocol)
    data = _edm2_layout(rng)
    shared_stats = data["fid"]
    pair = (1, "two", [3.0, None])
    data["fd_dinov2"]["mu_again"] = data["fd_dinov2"]["mu"]  # one array at two places
    data["fid_copy"] = shared_stats  # one dict at two places
    data["extras"] = [pair, pair, {"p": pair, "s": shared_stats}]
    out = loads_numpy_pickle(pickle.dumps(data, protocol=protocol))
    assert out.keys() == data.keys() and out["num_images"] == 40
    for metric in ("fid", "fid_copy", "fd_dinov2"):
        for key in data[metric]:
            got, want = out[metric][key], data[metric][key]
            assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)
    assert out["extras"][:2] == [pair, pair] and out["extras"][2]["p"] == pair
    assert out["extras"][2]["s"].keys() == {"mu", "sigma"}
    assert np.array_equal(out["extras"][2]["s"]["sigma"], shared_stats["sigma"])


def test_a_large_leaf_shared_along_a_dag_is_not_copied():
    # A 1 MiB bytes object at the bottom of a depth-20 DAG: 2^20 paths reach it. The leaf is never copied and
    # each list is converted once, so this reads quickly and allocates about the file's size, not 2^20 MiB.
    import tracemalloc

    leaf = b"x" * (1 << 20)
    ops = bytearray(b"\x80\x04B" + struct.pack("<I", len(leaf)) + leaf + b"\x94")  # BINBYTES, MEMOIZE (memo 0)
    for k in range(20):
        ops += b"](h" + bytes([k]) + b"h" + bytes([k]) + b"e\x94"
    raw = bytes(ops + b".")
    tracemalloc.start()
    try:
        start = time.monotonic()
        out = loads_numpy_pickle(raw)
        elapsed = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2.0  # ~170 opcodes and 20 lists to convert (tracemalloc adds little to that)
    assert peak < 8 * len(raw)  # the file's bytes, read once, and its one leaf
    node = out
    for _ in range(20):
        assert node[0] is node[1]
        node = node[0]
    assert node == leaf
