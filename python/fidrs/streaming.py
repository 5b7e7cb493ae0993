"""FID inside a training loop: feed generated images batch by batch as they are made, in memory, and get the
distance to a reference whenever wanted (the torchmetrics `update()` / `compute()` shape). The network is loaded
once; features are folded into the same float64 moments as `fidrs.stats`, so the number equals `fidrs.score` on
the same pixels (tested within 1e-9)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import _fidrs, sources
from .display import display
from .errors import InvalidInputError
from .frechet import frechet_distance
from .options import resolve
from .sources import ImageArray
from .statistics import Stats, check_sample_count

if TYPE_CHECKING:
    from .feature_pass import FeaturePass


def as_uint8_nhwc(images: Any) -> np.ndarray:
    """N×H×W×3 uint8 from anything array-like: numpy, an object with `__array__`, or one with `__dlpack__` (a
    CPU torch tensor works without fidrs importing torch). Layout NHWC or NCHW (the axis of size 3; refused
    when both could be). uint8 is taken as is; floats must lie in [0, 1] and become round(255·x), the exact
    inverse of x = v/255 (torchmetrics truncates instead, which can lose a level to round-off)."""
    if hasattr(images, "__dlpack__") and not isinstance(images, np.ndarray):
        try:
            array = np.from_dlpack(images)
        except (TypeError, RuntimeError, BufferError) as e:
            raise InvalidInputError(f"cannot read the images through DLPack (a GPU tensor? use .cpu()): {e}") from None
    else:
        array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise InvalidInputError(f"images must be N×H×W×3 or N×3×H×W, got shape {array.shape}")
    nhwc, nchw = array.shape[-1] == 3, array.shape[1] == 3
    if nhwc and nchw:
        raise InvalidInputError(f"shape {array.shape}: both axis 1 and axis 3 have size 3; pass N×H×W×3 explicitly")
    if not (nhwc or nchw):
        raise InvalidInputError(f"images need 3 colour channels on axis 1 or 3, got shape {array.shape}")
    if nchw:
        array = array.transpose(0, 2, 3, 1)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind != "f":
        raise InvalidInputError(f"images must be uint8 (0..255) or float (0..1), got {array.dtype}")
    if not np.isfinite(array).all() or array.min(initial=0.0) < 0 or array.max(initial=0.0) > 1:
        raise InvalidInputError("float images must hold finite values in [0, 1]")
    return np.ascontiguousarray(np.rint(array.astype(np.float64) * 255).astype(np.uint8))


Reference = Union["Accumulator", Stats, str, os.PathLike]


class Accumulator:
    """Streaming statistics of images fed in memory: `update(images)` any number of times, `stats()`,
    `compute(reference)` → the Fréchet distance (FID on the Inception), `reset()`. Options as for `fidrs.score`
    (backbone, weights, mode, batch_size, device, …); `evaluator.accumulator()` makes one on an Evaluator's network."""

    def __init__(self, *, network: FeaturePass | None = None, **options: Any) -> None:
        """`network`: the feature pass of an Evaluator (`evaluator.accumulator()`); else one is made from
        `options`."""
        if network is not None and options:
            raise InvalidInputError("give a network or options, not both")
        if network is None:
            from .feature_pass import FeaturePass

            options.setdefault("cache", False)  # images in memory have no file to key a cache on
            network = FeaturePass(resolve(**options))
        self._network = network
        backbone = network.backbone
        self._column = backbone.output_names.index(backbone.feature_output)
        self._moments = _fidrs.Moments(backbone.feature_dim)

    @property
    def n(self) -> int:
        return self._moments.n

    def update(self, images: Any) -> None:
        """Add a batch of images (see `as_uint8_nhwc` for what is accepted)."""
        from .feature_pass import PassReport

        batch = as_uint8_nhwc(images)
        if len(batch) == 0:
            return
        for _idx, columns in self._network.iter_batches(ImageArray(batch), PassReport()):
            self._moments.update(columns[self._column])

    def reset(self) -> None:
        self._moments = _fidrs.Moments(self._network.backbone.feature_dim)

    def stats(self) -> Stats:
        """A snapshot: later updates do not change it."""
        backbone = self._network.backbone
        check_sample_count(self.n, backbone.feature_dim, "accumulated images", stacklevel=2)
        m = self._moments
        snapshot = _fidrs.Moments.from_parts(m.n, m.sum, m.sum_outer)
        model = self._network.model
        return Stats.from_moments(
            snapshot, self._network.resolved.mode_label, model.weights_sha256, backbone.name, model.graph_sha256
        )

    def compute(self, reference: Reference) -> float:
        """The Fréchet distance between the accumulated images and `reference`: another accumulator, a
        `Stats`, or a statistics or reference file (.npz, .pkl, `ref:NAME`). Incompatible statistics (other
        backbone, mode, weights) are refused."""
        if isinstance(reference, Accumulator):
            other = reference.stats()
        elif isinstance(reference, Stats):
            other = reference
        elif isinstance(reference, (str, os.PathLike)):
            # any statistics or reference file, or `ref:NAME`; a file of several backbones gives this one's
            held = sources.resolve(reference).precomputed(self._network.backbone.name)
            if held is None:
                raise InvalidInputError(f"{display(os.fspath(reference))}: holds no statistics of this backbone")
            other = held
        else:
            raise InvalidInputError(
                f"reference must be an Accumulator, a Stats or a statistics file, got {type(reference).__name__}"
            )
        mine = self.stats()
        mine.check_compatible(other, ("accumulated images", "reference"))
        return frechet_distance(mine.mu, mine.sigma, other.mu, other.sigma)
