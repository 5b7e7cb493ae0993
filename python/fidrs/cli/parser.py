"""The command line: the common flags come from `fidrs.Options`, each metric subcommand (its inputs, flags and
help) from the metric registry."""

from __future__ import annotations

import argparse
import math

import fidrs
from fidrs import backbones, metrics
from fidrs.options import ClusterOptions


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_ray(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("cluster (pip install 'fidrs[ray]')")
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run the feature pass on Ray: a cluster address (host:6379, ray://host:10001, auto), or none for a "
        "local Ray instance",
    )
    ClusterOptions.add_arguments(group)


_STATISTICS = "statistics or reference file (.npz, .npy, EDM2 .pkl), or ref:NAME (`fidrs refs list`)"
_INPUT_HELP = {
    "a": f"directory, image file, glob, zip, URL, {_STATISTICS}; for feature metrics, a .npy embedding file",
    "b": f"directory, image file, glob, zip, URL, {_STATISTICS}; for feature metrics, a .npy embedding file",
    "reference": "reference (real, training) images",
    "generated": "generated images",
    "images": "images",
}


def _add_metric(sub, metric: metrics.Metric) -> None:
    p = sub.add_parser(metric.command, help=metric.help, description=f"{metric.title}. Protocol: {metric.protocol}.")
    for name in metric.cli_inputs or metric.inputs:
        p.add_argument(name, metavar=name.upper(), help=_INPUT_HELP.get(name, name))
    for param in metric.params:
        p.add_argument(
            param.cli_flag,
            dest=param.name,
            type=param.parse,
            default=param.default,
            choices=param.choices,
            help=f"{param.help} (default: {param.default})",
        )
    _json_flag(p)
    shown = {}
    if metric.backbone is not None:
        shown["backbone"] = (
            f"{metric.backbone}, on which {metric.title} is defined; another backbone gives the same estimator on its "
            f"features, not comparable with published {metric.title} values"
        )
    fidrs.Options.add_arguments(p, shown_defaults=shown)
    p.set_defaults(metric=metric.name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fidrs",
        description="Fast, exact Fréchet distances (FID, FD_DINOv2, CLIP-FID), CMMD and companion metrics.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    fid = metrics.get_metric("fid")
    score = sub.add_parser("score", help="FID between two image sets, statistics files or published references")
    score.add_argument("a", help=_INPUT_HELP["a"])
    score.add_argument("b", help=_INPUT_HELP["b"])
    _json_flag(score)
    score.add_argument("--max-fid", type=_non_negative_float, help="CI gate: exit 1 when FID is above this value")
    score.add_argument(
        "--jsonl", metavar="FILE", help="append this run's JSON as one line to FILE (a time series of FIDs)"
    )
    method = fid.param("method")
    score.add_argument("--method", default=method.default, choices=method.choices, help=method.help)
    rounds = metrics.get_metric("fid_confidence").param("rounds")
    score.add_argument(
        "--bootstrap",
        type=rounds.parse,
        metavar="ROUNDS",
        help="also report the fid_confidence metric: a bootstrap interval over images and FID at several n",
    )
    fidrs.Options.add_arguments(score)

    stats = sub.add_parser(
        "stats",
        help="save μ/Σ statistics of an image set to .npz (several --backbone: each one's, from one decode of each "
        "image, in one file)",
    )
    stats.add_argument("a", help="directory, image file, glob, zip or URL")
    stats.add_argument("-o", "--output", required=True, help="output .npz path")
    for p in (score, stats):
        _add_ray(p)
    fidrs.Options.add_arguments(stats, repeatable=["backbone"])

    for name in metrics.metric_names():
        metric = metrics.get_metric(name)
        if metric.command:
            _add_metric(sub, metric)

    kid = metrics.get_metric("kid")
    report = sub.add_parser("report", help="per-class analysis against a reference class (PNG + JSON + HTML)")
    report.add_argument("a", metavar="DIR", help="folder of class subfolders")
    report.add_argument("--reference", required=True, help="name of the reference class subfolder")
    report.add_argument("-o", "--output", required=True, help="output folder")
    for name in ("subset_size", "subsets"):
        param = kid.param(name)
        report.add_argument(f"--kid-{name.replace('_', '-')}", type=param.parse, default=param.default, help=param.help)
    remainder = metrics.get_metric("cmmd").param("batch_remainder")
    report.add_argument(
        remainder.cli_flag,
        dest="cmmd_batch_remainder",
        default=remainder.default,
        choices=remainder.choices,
        help=f"{remainder.help} (default: {remainder.default})",
    )
    fidrs.Options.add_arguments(report)

    models = sub.add_parser("models", help="backbones: list with cache status, fetch ahead of time, export ONNX")
    models_sub = models.add_subparsers(dest="models_action")
    listing = models_sub.add_parser("list", help="every backbone, its licence and what the cache holds (default)")
    _json_flag(listing)
    fetch = models_sub.add_parser("fetch", help="download, verify and build a backbone's graph now")
    export = models_sub.add_parser("export", help="write a backbone's ONNX graph (with fidrs metadata) to a file")
    for p in (fetch, export):
        p.add_argument("name", choices=_Backbones(), metavar="NAME", help="backbone (see `fidrs models`)")
        p.add_argument("--weights", help="a checkpoint to use instead of the official one")
        p.add_argument("--weights-sha256", metavar="HEX", help="refuse a checkpoint whose sha256 differs")
    export.add_argument("-o", "--output", required=True, help="output .onnx path")

    _add_refs(sub)

    cache = sub.add_parser("cache", help="feature cache: size, or clear it")
    cache.add_argument("action", choices=["info", "clear"])

    merge = sub.add_parser("merge", help="merge statistics of disjoint image sets (shards) into one .npz")
    merge.add_argument("inputs", nargs="+", help=".npz statistics written by fidrs (they carry their moments)")
    merge.add_argument("-o", "--output", required=True, help="output .npz path")
    return parser


def _add_refs(sub) -> None:
    refs = sub.add_parser(
        "refs", help="published reference statistics (ADM, clean-fid, EDM, EDM2, TTUR): list, info, fetch"
    )
    refs_sub = refs.add_subparsers(dest="refs_action")
    listing = refs_sub.add_parser("list", help="every catalogued reference, its statistics and cache state (default)")
    listing.add_argument("--collection", choices=_Collections(), help="only this publisher's references")
    _json_flag(listing)
    info = refs_sub.add_parser("info", help="one reference as JSON: URL, licence, citation, protocol, cache state")
    info.add_argument("name", metavar="NAME", help="reference name (`fidrs refs list`), `ref:` optional")
    fetch = refs_sub.add_parser("fetch", help="download and verify a reference now (later uses read the cache)")
    fetch.add_argument("name", metavar="NAME", help="reference name (`fidrs refs list`), `ref:` optional")
    fetch.add_argument("--url", help="download from this URL instead (a mirror; FIDRS_REF_URL_<NAME> does the same)")
    fetch.add_argument("--sha256", metavar="HEX", help="refuse a file whose sha256 differs")
    fetch.add_argument("--verify", action="store_true", help="hash a cached copy even if its size and mtime match")
    _json_flag(fetch)


class _Collections:
    """The catalogue's collections, read when argparse checks a name or shows the help."""

    def __contains__(self, value: object) -> bool:
        return value in list(self)

    def __iter__(self):
        from fidrs.references import catalogue

        return iter(catalogue.collections())


class _Backbones:
    """The registered backbones, read when argparse checks a name or shows the help."""

    def __contains__(self, value: object) -> bool:
        return value in backbones.names()

    def __iter__(self):
        return iter(backbones.names())
