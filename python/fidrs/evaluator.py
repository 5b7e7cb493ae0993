"""The Evaluator: resolved options and one network, loaded the first time images need it (two statistics files
are scored without any). It serves every way fidrs computes something: `features`, `feature_set`, `stats`,
`score`/`fid`, every registered metric (`compute`), an `accumulator()` for training loops and the per-class
`report`. The module-level functions (`fidrs.score`, `fidrs.kid`, …) are thin calls on one."""

from __future__ import annotations

import dataclasses
import threading
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _fidrs, config, sources
from .display import display
from .embedding_files import is_embedding_file, load_embeddings
from .errors import BadImagesError, FidrsError, InvalidInputError, UnknownModeWarning
from .feature_sets import FeatureSet
from .metrics import FEATURES, LOGITS, STATISTICS, FIDResult, Result, get_metric
from .metrics.base import no_logits
from .options import Options, Resolved, resolve
from .provenance import Provenance, check_compatible
from .sources import InputLike, Source
from .statistics import Stats, check_sample_count

if TYPE_CHECKING:
    from .feature_pass import FeaturePass, PassReport
    from .reference_mode import Plan
    from .streaming import Accumulator


class Evaluator:
    """`Evaluator(options, **keywords)`: every option is checked now (InvalidInputError), nothing is read or
    loaded until something is computed; the network is then loaded once and reused by every call."""

    def __init__(self, options: Options | Resolved | None = None, **keywords: Any) -> None:
        config.validate()  # the environment is checked with the options, before anything is read
        self.resolved: Resolved = resolve(options, **keywords)
        self._network: FeaturePass | None = None
        self._siblings: dict[str, Evaluator] = {}  # the same options in the modes references asked for
        self._lock = threading.Lock()

    @property
    def options(self) -> Options:
        return self.resolved.options

    @property
    def backbone(self):
        return self.resolved.backbone

    def __repr__(self) -> str:
        loaded = "loaded" if self._network is not None else "not loaded"
        return f"Evaluator({self.backbone.name}, mode {self.resolved.mode_label}, network {loaded})"

    @property
    def network(self) -> FeaturePass:
        """The feature pass (checkpoint resolved, graph built or loaded, ONNX Runtime session), made once."""
        with self._lock:
            if self._network is None:
                from .feature_pass import FeaturePass

                self._network = FeaturePass(self.resolved)
            return self._network

    @property
    def loaded(self) -> bool:
        return self._network is not None

    # --- one input ---------------------------------------------------------------------------------------

    def features(self, inputs: InputLike) -> np.ndarray:
        """The backbone's features (N × d float32: pool3 for the Inception, the CLS token for DINOv2, the image
        embedding for CLIP) in input order."""
        source = sources.resolve(inputs, allow_stats=False)
        network = self.network
        return network.collect(source).outputs[network.backbone.feature_output]

    def feature_set(self, inputs: InputLike) -> FeatureSet:
        """Run the network once over `inputs` and keep what every metric needs."""
        source = sources.resolve(inputs, allow_stats=False)
        network = self.network
        collected = network.collect(source, label=sources.label(inputs, "features"))
        backbone, model = network.backbone, network.model
        labels = source.labels
        return FeatureSet(
            collected.outputs[backbone.feature_output],
            collected.outputs[backbone.logits_output] if backbone.logits_output else None,
            [labels[i] for i in collected.kept],
            self.resolved.mode_label,
            model.weights_sha256,
            collected.report.skipped,
            backbone.name,
            model.graph_sha256,
            collected.report.cache_hits,
        )

    def stats(self, inputs: InputLike) -> Stats:
        """μ and Σ (float64, n − 1) of the backbone's features, streamed: memory stays O(d²)."""
        source = sources.resolve(inputs, allow_stats=False)
        return self._computed_stats(source, sources.label(inputs, "input"))[0]

    def provenance(self) -> Provenance:
        """What statistics computed here record (loads the network: the weights' and graph's hashes)."""
        model = self.network.model
        return Provenance(
            self.backbone.name,
            self.resolved.mode_label,
            model.weights_sha256,
            model.graph_sha256,
            self.backbone.feature_dim,
        )

    def _computed_stats(self, source: Source, label: str) -> tuple[Stats, PassReport]:
        from .feature_pass import PassReport

        network = self.network
        report = PassReport()
        backbone, model = network.backbone, network.model
        column = backbone.output_names.index(backbone.feature_output)
        moments = _fidrs.Moments(backbone.feature_dim)
        for _idx, columns in network.iter_batches(source, report, label=label):
            moments.update(columns[column])
        check_sample_count(moments.n, backbone.feature_dim, label, stacklevel=4)
        stats = Stats.from_moments(
            moments, self.resolved.mode_label, model.weights_sha256, backbone.name, model.graph_sha256
        )
        return stats, report

    def _side_stats(self, inputs: InputLike | Source, label: str) -> tuple[Stats, PassReport | None]:
        source = sources.resolve(inputs)
        held = source.precomputed(self.backbone.name)
        if held is not None:
            return held, None
        return self._computed_stats(source, label)

    def decode_failures(self, inputs: InputLike | Source) -> list[tuple[str, str]]:
        """(name, reason) of every image of `inputs` that cannot be decoded; no network runs."""
        from .feature_pass import decode_failures

        try:
            source = sources.resolve(inputs)
        except FidrsError:
            return []  # reported on its own once the other side is fixed
        if source.precomputed(self.backbone.name) is not None:
            return []
        return decode_failures(source, self.resolved)

    # --- inputs that hold statistics: the mode their other side is computed in -------------------------------

    def plan(self, sides: Sequence[tuple[str, Source]], *, computes_images: bool | None = None) -> Plan:
        """The mode decision for these inputs (reference_mode.py): the reference's mode by default, a
        contradicting explicit mode refused unless allow_mode_mismatch."""
        from .reference_mode import plan

        return plan(self.resolved, sides, computes_images=computes_images)

    def _for_statistics(self, inputs: Sequence[Source]) -> Evaluator:
        """No backbone chosen (nor a `model`) and every input a statistics file recording one and the same
        backbone: that backbone's (two FD_DINOv2 files compare as such, no network runs). Otherwise this one:
        a side of images is computed with the backbone the options name, never one guessed from the other."""
        if self.options.backbone is not None or self.options.model is not None:
            return self
        if any(source.has_images or not source.recorded_backbones() for source in inputs):
            return self
        recorded = {name for source in inputs for name in source.recorded_backbones()}
        if len(recorded) != 1 or recorded == {self.backbone.name}:
            return self
        with self._lock:
            (name,) = recorded
            sibling = self._siblings.get(f"backbone:{name}")
            if sibling is None:
                sibling = self._siblings[f"backbone:{name}"] = Evaluator(self.options, backbone=name)
            return sibling

    def in_mode(self, resolved: Resolved) -> Evaluator:
        """This Evaluator, or one of the same options in another mode (made once, its network loaded lazily)."""
        if resolved.mode.name == self.resolved.mode.name:
            return self
        with self._lock:
            sibling = self._siblings.get(resolved.mode.name)
            if sibling is None:
                sibling = self._siblings[resolved.mode.name] = Evaluator(resolved)
            return sibling

    # --- two inputs: the Fréchet distance ------------------------------------------------------------------

    def fid(self, a: InputLike, b: InputLike, *, method: str | None = None) -> FIDResult:
        """The Fréchet distance of two image sets or statistics files, with everything `fidrs score` reports."""
        metric = get_metric("fid")
        params = metric.checked({} if method is None else {"method": method})
        started = time.perf_counter()
        label_a, label_b = sources.label(a, "a"), sources.label(b, "b")
        source_a, source_b = sources.resolve(a), sources.resolve(b)
        chosen = self._for_statistics((source_a, source_b))
        plan = chosen.plan([(label_a, source_a), (label_b, source_b)])
        runner = chosen.in_mode(plan.resolved)
        try:
            stats_a, report_a = runner._side_stats(source_a, label_a)
        except BadImagesError as bad_a:
            # Report every bad file of both sides in one run: scan B's files (decode only, no network).
            raise BadImagesError(bad_a.failures + runner.decode_failures(source_b)) from None
        stats_b, report_b = runner._side_stats(source_b, label_b)
        return runner.fid_of_stats(
            (label_a, stats_a, report_a), (label_b, stats_b, report_b), params, started=started, plan=plan
        )

    def fid_of_stats(
        self,
        side_a: tuple[str, Stats, PassReport | None],
        side_b: tuple[str, Stats, PassReport | None],
        params: dict[str, Any],
        *,
        started: float,
        run: Provenance | None = None,
        provider: str | None = None,
        plan: Plan | None = None,
    ) -> FIDResult:
        """The FID result of both sides' statistics (computed here, on a cluster, or loaded). `run`: what this
        run computes with (default: this Evaluator's network, if it ran); a loaded statistics file must match it.
        `plan`: the mode decision for inputs that hold statistics (their mode, the notes of an allowed mismatch)."""
        (label_a, stats_a, report_a), (label_b, stats_b, report_b) = side_a, side_b
        if plan is not None:
            stats_a, stats_b = plan.compared(label_a, stats_a), plan.compared(label_b, stats_b)
        if run is None and self.loaded:
            run, provider = self.provenance(), self.network.provider
        if run is not None:
            for label, s in ((label_a, stats_a), (label_b, stats_b)):
                check_compatible([("this run", run), (label, s.provenance)])
                if plan is not None and plan.mismatched(label):
                    continue  # its note says more than the warning would
                if s.mode is None and run.mode != self.backbone.default_mode:
                    warnings.warn(
                        f"{display(label)}: the statistics file records no preprocessing mode (pytorch-fid and "
                        f"clean-fid files do not), so it is unknown; it is compared with images preprocessed in "
                        f"mode {run.mode!r}",
                        UnknownModeWarning,
                        stacklevel=4,
                    )
        result = get_metric("fid").run((stats_a, stats_b), (label_a, label_b), params)
        reports = [r for r in (report_a, report_b) if r is not None]
        extra: dict[str, Any] = {}
        if plan is not None:
            extra = {
                "references": plan.references(),
                "notes": list(plan.notes),
                "mode_mismatch_allowed": any(plan.mismatched(label) for label in (label_a, label_b)),
            }
            for field, label in (("mode_a", label_a), ("mode_b", label_b)):
                if plan.mismatched(label):
                    extra[field] = plan.reference_mode(label)  # the recorded mode, left out of the check
        return dataclasses.replace(
            result,  # type: ignore[arg-type]
            **extra,
            provider=provider,
            skipped=[{"path": p, "reason": r} for report in reports for p, r in report.skipped],
            cache_hits=sum(r.cache_hits for r in reports),
            seconds=time.perf_counter() - started,
        )

    def score_details(self, a: InputLike, b: InputLike, *, method: str | None = None) -> dict[str, Any]:
        """`score` with everything the CLI reports: fid, backbone, n_a, n_b, mode, weights_sha256, provider,
        skipped, …"""
        return self.fid(a, b, method=method).to_dict()

    def score(self, a: InputLike, b: InputLike, *, method: str | None = None) -> float:
        """FID (on the Inception; FD_DINOv2 on DINOv2, …) between two image sets or statistics files."""
        return self.fid(a, b, method=method).value

    # --- every registered metric -------------------------------------------------------------------------

    @staticmethod
    def compute_params(metric: str, params: dict[str, Any]) -> dict[str, Any]:
        """Every parameter of `metric` (defaults where not given), checked."""
        return get_metric(metric).checked(params)

    def compute(self, metric: str, *inputs: Any, **params: Any) -> Result:
        """The registered metric `metric` of `inputs` (image inputs, FeatureSets, or for the Fréchet distance
        Stats), its parameters checked before any image is read."""
        spec = get_metric(metric)
        checked = spec.checked(params)
        if len(inputs) != len(spec.inputs):
            raise InvalidInputError(f"{spec.name} takes {len(spec.inputs)} input(s) ({', '.join(spec.inputs)})")
        if spec.reads == LOGITS and self.backbone.logits_output is None:
            if not all(isinstance(x, FeatureSet) for x in inputs):
                raise no_logits(spec, self.backbone.name)  # before any image is read
        labels = [sources.label(x, name) for x, name in zip(inputs, spec.inputs)]
        given = [
            x
            if isinstance(x, (Stats, FeatureSet))
            else load_embeddings(x)  # features written earlier (CMMD's reference file): no network for them
            if spec.reads == FEATURES and is_embedding_file(x)
            else sources.resolve(x)
            for x in inputs
        ]
        # Inputs that hold statistics decide the mode the images are computed in (for every metric: the images
        # of an ADM batch are computed in its mode too, so both sides are made alike).
        runner, plan = self, None
        held = [(label, x) for label, x in zip(labels, given) if not isinstance(x, (Stats, FeatureSet))]
        if held:
            plan = self.plan(held, computes_images=spec.reads != STATISTICS or None)
            runner = self.in_mode(plan.resolved)
        sides = [runner._prepared(x, spec.reads, label) for x, label in zip(given, labels)]
        if plan is not None and spec.reads == STATISTICS:
            sides = [plan.compared(label, side) for label, side in zip(labels, sides)]
        return spec.run(sides, labels, checked)

    def _prepared(self, x: Any, reads: str, label: str) -> FeatureSet | Stats:
        if reads == STATISTICS:
            if isinstance(x, Stats):
                return x
            if isinstance(x, FeatureSet):
                return x.stats()
            return self._side_stats(x, label)[0]
        return x if isinstance(x, FeatureSet) else self.feature_set(x)

    # --- the rest ------------------------------------------------------------------------------------------

    def fetch(self):
        """Resolve the network now (download and verify the checkpoint, build and cache its graph) without
        loading a runtime; returns the resolved model (checkpoint, weights sha256, graph path and identity)."""
        from .feature_pass import load_model

        return self._network.model if self._network is not None else load_model(self.resolved)

    def export(self, output: str) -> list:
        """Write this network's ONNX graph, with fidrs' metadata, to `output` (and `output.data`); returns the
        files written."""
        from .exported import export_model

        return export_model(self.fetch(), output)

    def accumulator(self) -> Accumulator:
        """A streaming accumulator (training loops) on this Evaluator's network."""
        from .streaming import Accumulator

        return Accumulator(network=self.network)

    def class_feature_sets(self, root: str, classes: Sequence[str] | None = None) -> dict[str, FeatureSet]:
        """One feature set per class subfolder of `root` (sorted by name)."""
        from .report import class_folders

        return {name: self.feature_set(path) for name, path in class_folders(root, classes).items()}

    def report(self, root: str, reference: str, output: str, **params: Any) -> dict[str, Any]:
        """`fidrs report`: every class of `root` against `reference`, written to `output` (PNG, JSON, HTML).
        Before any image is read: the reference exists, `output` is outside the dataset, and every class has
        enough image files."""
        from .report import build_report, check_class_sizes, check_output_folder, check_reference, class_folders

        check_reference(root, reference)
        if "cmmd_batch_remainder" in params:
            rule = get_metric("cmmd").param("batch_remainder")
            rule.check("cmmd_batch_remainder", params["cmmd_batch_remainder"])
        folders = class_folders(root)
        check_output_folder(root, folders, output)
        resolved = {name: sources.resolve(path, allow_stats=False) for name, path in folders.items()}
        check_class_sizes({name: len(source) for name, source in resolved.items()}, folders)
        sets = {name: self.feature_set(source) for name, source in resolved.items()}
        return build_report(sets, reference, output, **params)
