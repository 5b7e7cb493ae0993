"""One function per command; each builds its options from the flags (`fidrs.Options.from_arguments`), calls the
public API, and prints the result."""

from __future__ import annotations

import dataclasses
import sys
import time
from argparse import Namespace

import fidrs
from fidrs import metrics, sources, strictjson
from fidrs.display import fixed
from fidrs.errors import EXIT_ABOVE_THRESHOLD, EXIT_OK, InvalidInputError
from fidrs.files import check_output_apart
from fidrs.options import ClusterOptions, flag
from fidrs.statistics import merge_shards

from .records import record_run
from .stdout_guard import print_result


def run(args: Namespace) -> int:
    if getattr(args, "metric", None):
        return metric(args, metrics.get_metric(args.metric))
    return {
        "score": score,
        "stats": stats,
        "report": report,
        "models": models,
        "refs": refs,
        "cache": cache,
        "merge": merge,
    }[args.command](args)


def _options(args: Namespace, **defaults) -> fidrs.Options:
    """The common flags; progress bars by default when stderr is a terminal (and `defaults` where not given)."""
    return fidrs.Options.from_arguments(args, progress=sys.stderr.isatty(), **defaults)


def _cluster(args: Namespace) -> dict | None:
    """The cluster run's keywords (`fidrs.options.ClusterOptions`, checked here), or None for a local run."""
    if getattr(args, "ray", None) is None:
        names = ClusterOptions.cli_names()
        if any(getattr(args, name, None) is not None for name in names):
            flags = [flag(name) for name in names]
            raise InvalidInputError(f"{', '.join(flags[:-1])} and {flags[-1]} need --ray")
        return None
    return ClusterOptions.from_arguments(args, address=args.ray or None).keywords()


def _cluster_options(options: fidrs.Options) -> dict:
    return dataclasses.replace(options, cache=False).keywords()  # the cache is local to a machine


def score(args: Namespace) -> int:
    options = _options(args)
    cluster = _cluster(args)
    if cluster is not None and args.bootstrap:
        raise InvalidInputError("--bootstrap needs every feature, which a cluster run does not bring back")
    confidence = None
    if args.bootstrap:
        evaluator = fidrs.Evaluator(options)
        # An ADM batch's images are computed in its mode, and so the other side (a statistics file alone is
        # refused by feature_set: the bootstrap needs every feature).
        sides = [(x, fidrs.sources.resolve(x)) for x in (args.a, args.b)]
        evaluator = evaluator.in_mode(evaluator.plan(sides, computes_images=True).resolved)
        a, b = evaluator.feature_set(sides[0][1]), evaluator.feature_set(sides[1][1])
        fid = evaluator.compute("fid", a, b, method=args.method)
        skipped = [{"path": p, "reason": r} for p, r in a.skipped + b.skipped]
        result = dataclasses.replace(fid, skipped=skipped, provider=evaluator.network.provider).to_dict()
        confidence = evaluator.compute("fid_confidence", a, b, rounds=args.bootstrap)
        result["bootstrap"] = confidence.to_dict()
    elif cluster is not None:
        from fidrs import distributed

        keywords = {**cluster, **_cluster_options(options)}
        result = distributed.score_details(args.a, args.b, method=args.method, **keywords)
    else:
        result = fidrs.Evaluator(options).score_details(args.a, args.b, method=args.method)
    passed = args.max_fid is None or result["fid"] <= args.max_fid
    if args.max_fid is not None:
        result["max_fid"] = args.max_fid
        result["passed"] = passed
    record_run(result, args.a, args.b, jsonl=args.jsonl)
    if args.json:
        print_result(strictjson.dumps(result))
    else:
        print_result(fixed(result["fid"]))
        if confidence is not None:
            print(metrics.get_metric("fid_confidence").text(confidence), file=sys.stderr)
        if args.max_fid is not None:
            verdict = "PASS" if passed else "FAIL"
            print(f"{verdict}: FID {fixed(result['fid'])} {'<=' if passed else '>'} {args.max_fid}", file=sys.stderr)
    return EXIT_OK if passed else EXIT_ABOVE_THRESHOLD


def stats(args: Namespace) -> int:
    start = time.perf_counter()
    names = list(dict.fromkeys(args.backbone or []))  # --backbone given several times: each once, in order
    args.backbone = names[0] if len(names) == 1 else None
    options = _options(args)
    cluster = _cluster(args)
    evaluator = fidrs.Evaluator(options) if cluster is None else None  # every option checked before any read
    check_output_apart(args.output, _local_files(args.a))  # before the feature pass, not after it
    if len(names) > 1:
        if cluster is not None:
            raise InvalidInputError("several --backbone run on this machine (one decode feeds each); drop --ray")
        from fidrs.multi_pass import stats_by_backbone
        from fidrs.statistics import save_all

        computed = stats_by_backbone(args.a, names, options)
        save_all(args.output, computed)
        what = ", ".join(s.backbone or "?" for s in computed)
        n = computed[0].n
    else:
        if evaluator is None:
            from fidrs import distributed

            s = distributed.stats(args.a, **cluster, **_cluster_options(options))
        else:
            s = evaluator.stats(args.a)
        s.save(args.output)
        what, n = s.backbone or "?", s.n
    print(
        f"fidrs: saved {what} statistics of {n} images to {args.output} ({time.perf_counter() - start:.1f} s)",
        file=sys.stderr,
    )
    return EXIT_OK


def _local_files(inputs: str) -> list[str]:
    """The files on this machine `inputs` names (a folder's images, a zip, a statistics file); none for a URL,
    which is not listed twice over the network for this."""
    if sources.rules.is_url(inputs) and sources.rules.local_path(inputs) is None:
        return []
    return list(sources.resolve(inputs, allow_stats=False).local_files())


def metric(args: Namespace, spec: metrics.Metric) -> int:
    start = time.perf_counter()
    # A metric defined on one backbone (CMMD) runs on it unless --backbone or --model names another.
    backbone = spec.default_options({"backbone": args.backbone, "model": args.model})["backbone"]
    evaluator = fidrs.Evaluator(_options(args, backbone=backbone))
    params = {p.name: getattr(args, p.name) for p in spec.params}
    result = evaluator.compute(spec.name, *(getattr(args, name) for name in spec.inputs), **params)
    if args.json:
        print(strictjson.dumps({**result.to_dict(), "seconds": time.perf_counter() - start}))
    else:
        print(spec.text(result))
    return EXIT_OK


def report(args: Namespace) -> int:
    start = time.perf_counter()
    result = fidrs.Evaluator(_options(args)).report(
        args.a,
        args.reference,
        args.output,
        kid_subset_size=args.kid_subset_size,
        kid_subsets=args.kid_subsets,
        cmmd_batch_remainder=args.cmmd_batch_remainder,
    )
    print(
        f"fidrs: report of {sum(result['n'].values())} images in {len(result['classes'])} classes written to "
        f"{args.output} ({time.perf_counter() - start:.1f} s)",
        file=sys.stderr,
    )
    return EXIT_OK


def models(args: Namespace) -> int:
    from fidrs import catalogue

    if args.models_action in (None, "list"):
        if getattr(args, "json", False):
            print(strictjson.dumps({"models": catalogue.statuses()}))
        else:
            print(catalogue.table())
        return EXIT_OK
    evaluator = fidrs.Evaluator(backbone=args.name, weights=args.weights, weights_sha256=args.weights_sha256)
    if args.models_action == "fetch":
        model = evaluator.fetch()
        print(f"fidrs: {model.backbone.name}: checkpoint {model.checkpoint} (sha256 {model.weights_sha256})")
        print(f"fidrs: {model.backbone.name}: ONNX graph {model.onnx_path}")
        return EXIT_OK
    for path in evaluator.export(args.output):
        print(f"fidrs: wrote {path}", file=sys.stderr)
    return EXIT_OK


def refs(args: Namespace) -> int:
    from fidrs import references

    if args.refs_action in (None, "list"):
        collection = getattr(args, "collection", None)
        if getattr(args, "json", False):
            names = references.list_references(collection)
            print(strictjson.dumps({"references": [references.info(name) for name in names]}))
        else:
            print(references.table(collection))
        return EXIT_OK
    if args.refs_action == "info":
        print(strictjson.dumps(references.info(args.name), indent=1))
        return EXIT_OK
    path = references.fetch(args.name, url=args.url, sha256=args.sha256, verify=args.verify)
    described = references.info(args.name)
    if args.json:
        print(strictjson.dumps({**described, "path": str(path)}))
    else:
        print(f"fidrs: {described['name']}: {path} (sha256 {described['recorded_sha256'] or described['sha256']})")
    return EXIT_OK


def cache(args: Namespace) -> int:
    from fidrs import cache as feature_cache

    if args.action == "clear":
        removed = feature_cache.clear_cache()
        print(
            f"fidrs: removed {removed} file(s) fidrs wrote in {feature_cache.cache_dir()} (feature databases, ONNX "
            "graphs); files it did not write there are left alone",
            file=sys.stderr,
        )
    else:
        print(strictjson.dumps(feature_cache.cache_info(), indent=1))
    return EXIT_OK


def merge(args: Namespace) -> int:
    from fidrs.errors import IncompatibleStatsError
    from fidrs.statistics import backbones_in, save_all

    check_output_apart(args.output, args.inputs)
    names = backbones_in(args.inputs[0])  # a file of several backbones: each one's shards merged
    for path in args.inputs[1:]:
        if backbones_in(path) != names:
            raise IncompatibleStatsError(
                f"{path} holds statistics of {', '.join(backbones_in(path)) or 'one backbone'}; {args.inputs[0]} of "
                f"{', '.join(names) or 'one backbone'}: merge files of the same backbones"
            )
    merged = [merge_shards(args.inputs, name) for name in names] if names else [merge_shards(args.inputs)]
    save_all(args.output, merged)
    n = merged[0].n
    print(f"fidrs: merged {len(args.inputs)} statistics files ({n} images) into {args.output}", file=sys.stderr)
    return EXIT_OK
