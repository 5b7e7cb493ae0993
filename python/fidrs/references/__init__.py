"""Published reference statistics: readers for every format (ADM, clean-fid, EDM, EDM2, TTUR, pytorch-fid,
TF-GAN features, fidrs), with the provenance that says which preprocessing the other side must use.

    ref = read_reference("VIRTUAL_imagenet256_labeled.npz")    # or an EDM2 .pkl, a clean-fid .npz, ...
    entry = ref.entry("inception")                             # one call per backbone
    decision = decide_mode(entry.provenance, mode=None)        # tf1 for ADM's batches
"""

from .arrays import LazyArray
from .provenance import ModeDecision, Provenance, decide_mode, with_user_mode
from .readers import FORMATS, read_reference, sniff_format
from .reference import ReferenceEntry, ReferenceFile

__all__ = [
    "FORMATS",
    "LazyArray",
    "ModeDecision",
    "Provenance",
    "ReferenceEntry",
    "ReferenceFile",
    "decide_mode",
    "read_reference",
    "sniff_format",
    "with_user_mode",
]
