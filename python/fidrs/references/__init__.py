"""Published reference statistics: readers for every format (ADM, clean-fid, EDM, EDM2, TTUR, pytorch-fid,
TF-GAN features, fidrs), a catalogue of the published files with their provenance, and the rule that says which
preprocessing the other side must use.

    ref = resolve("ref:adm/imagenet-256")            # download, verify, cache, read (or resolve("path.npz"))
    entry = ref.entry("inception")                   # one call per backbone (EDM2's files hold two)
    decision = decide_mode(entry.provenance, mode=user_mode, allow_mode_mismatch=False)
    # decision.mode: "tf1" for ADM's batches; a contradicting user_mode raises IncompatibleStatsError
"""

from .arrays import LazyArray
from .catalogue import CatalogueEntry, list_references, lookup
from .fetching import cache_path, fetch, info, is_reference, resolve, table
from .provenance import ModeDecision, ReferenceProvenance, decide_mode, with_user_mode
from .readers import FORMATS, read_reference, sniff_format
from .reference import ReferenceEntry, ReferenceFile

__all__ = [
    "FORMATS",
    "CatalogueEntry",
    "LazyArray",
    "ModeDecision",
    "ReferenceProvenance",
    "ReferenceEntry",
    "ReferenceFile",
    "cache_path",
    "decide_mode",
    "fetch",
    "info",
    "is_reference",
    "list_references",
    "lookup",
    "read_reference",
    "resolve",
    "sniff_format",
    "table",
    "with_user_mode",
]
