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
