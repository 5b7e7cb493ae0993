"""The `fidrs` command. Exit codes: 0 pass, 1 FID above --max-fid, 2 bad input or usage, 3 internal error."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Sequence

from . import strictjson
from .frechet import METHODS
from .run_records import record_run
from .stdout_guard import print_result, results_only_on_stdout

EXIT_OK, EXIT_ABOVE_THRESHOLD, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`fidrs ... | head`)


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


_positive_int, _seed = _int_at_least(1), _int_at_least(0)


def _parse_color(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"colour must be R,G,B integers, got {text!r}") from None
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(f"colour must be three values in 0..255, got {text!r}")
    return values  # type: ignore[return-value]


def _add_common(p: argparse.ArgumentParser) -> None:
    from . import _fidrs, backbones

    p.add_argument(
        "--backbone",
        default=backbones.DEFAULT,
        choices=backbones.names(),
        help="feature network: inception (FID, default), dinov2 (= dinov2-vitl14: FD_DINOv2), dinov2-vit{s,b,l,g}14",
    )
    p.add_argument(
        "--weights",
        help="the backbone's checkpoint (.pth, or .safetensors for DINOv2); default: $FIDRS_WEIGHTS_<BACKBONE> "
        "($FIDRS_WEIGHTS for the Inception), the cache, then a download",
    )
    p.add_argument("--weights-sha256", metavar="HEX", help="refuse a checkpoint whose sha256 differs")
    p.add_argument("--model", metavar="X.onnx", help="a graph written by `fidrs models export` (instead of --weights)")
    p.add_argument(
        "--mode",
        default=None,
        choices=backbones.all_modes(),
        help="preprocessing preset of the backbone (default: pytorch-fid for inception, dgm-eval for dinov2)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="images per network call (default: 16 on CPU, 200 on CUDA)",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--skip-bad", action="store_true", help="skip undecodable files (listed) instead of failing")
    p.add_argument("--pad-color", type=_parse_color, default=(255, 255, 255), help="fill colour for --mode pad (R,G,B)")
    p.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=_fidrs.DEFAULT_MAX_PIXELS,
        help="refuse larger images (decompression bombs)",
    )
    p.add_argument("--allow-tf32", action="store_true", help="let CUDA use TF32 (faster, changes FID slightly)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true", help="progress bars on stderr even when it is no terminal")
    shown.add_argument("--no-progress", action="store_true", help="no progress bars (default: on when stderr is a tty)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")


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
    group.add_argument("--workers", type=_positive_int, help="workers (default: one per GPU, else one per CPU)")
    group.add_argument("--shard-size", type=_positive_int, help="images per shard (default: from the job size)")
    group.add_argument(
        "--retry-timeout",
        type=_non_negative_float,
        metavar="SECONDS",
        help="stop when workers keep failing for this long with no shard completed (default: 300; at least "
        "twice the longest shard)",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import backbones

    parser = argparse.ArgumentParser(
        prog="fidrs", description="Fast, exact Fréchet distances (FID, FD_DINOv2) and companion metrics."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    score = sub.add_parser("score", help="FID between two image sets or .npz statistics")
    score.add_argument("a", help="directory, image file, glob or .npz statistics")
    score.add_argument("b", help="directory, image file, glob or .npz statistics")
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.add_argument("--max-fid", type=_non_negative_float, help="CI gate: exit 1 when FID is above this value")
    score.add_argument(
        "--jsonl", metavar="FILE", help="append this run's JSON as one line to FILE (a time series of FIDs)"
    )
    score.add_argument("--method", default="auto", choices=list(METHODS))
    score.add_argument(
        "--bootstrap",
        type=_positive_int,
        metavar="ROUNDS",
        help="also report a 95 %% bootstrap interval over images and FID at several n",
    )
    _add_common(score)

    stats = sub.add_parser("stats", help="save μ/Σ statistics of an image set to .npz")
    stats.add_argument("a", help="directory, image file or glob")
    stats.add_argument("-o", "--output", required=True, help="output .npz path")
    for p in (score, stats):
        _add_ray(p)
    _add_common(stats)

    kid = sub.add_parser("kid", help="Kernel Inception Distance (mean, std over subsets)")
    kid.add_argument("a")
    kid.add_argument("b")
    kid.add_argument("--subset-size", type=_int_at_least(2), default=1000)
    kid.add_argument("--subsets", type=_positive_int, default=100)
    kid.add_argument("--seed", type=_seed, default=0)
    isc = sub.add_parser("is", help="Inception Score (mean, std over splits)")
    isc.add_argument("a")
    isc.add_argument("--splits", type=_positive_int, default=10)
    isc.add_argument("--seed", type=_seed, default=2020)
    pr = sub.add_parser("pr", help="precision, recall, density, coverage (REAL GENERATED)")
    pr.add_argument("a", help="real images")
    pr.add_argument("b", help="generated images")
    pr.add_argument("-k", type=_positive_int, default=3)
    memo = sub.add_parser("memorization", help="nearest training image of each generated one (copy detection)")
    memo.add_argument("a", help="generated images")
    memo.add_argument("b", help="training images")
    memo.add_argument("--threshold", type=_non_negative_float, default=0.1)
    memo.add_argument("--top", type=_seed, default=10)
    for p in (kid, isc, pr, memo):
        p.add_argument("--json", action="store_true", help="print one JSON object")
        _add_common(p)

    report = sub.add_parser("report", help="per-class analysis against a reference class (PNG + JSON + HTML)")
    report.add_argument("a", metavar="DIR", help="folder of class subfolders")
    report.add_argument("--reference", required=True, help="name of the reference class subfolder")
    report.add_argument("-o", "--output", required=True, help="output folder")
    report.add_argument("--kid-subset-size", type=_int_at_least(2), default=1000)
    report.add_argument("--kid-subsets", type=_positive_int, default=100)
    _add_common(report)

    models = sub.add_parser("models", help="backbones: list with cache status, fetch ahead of time, export ONNX")
    models_sub = models.add_subparsers(dest="models_action")
    listing = models_sub.add_parser("list", help="every backbone, its licence and what the cache holds (default)")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    fetch = models_sub.add_parser("fetch", help="download, verify and build a backbone's graph now")
    export = models_sub.add_parser("export", help="write a backbone's ONNX graph (with fidrs metadata) to a file")
    for p in (fetch, export):
        p.add_argument("name", choices=backbones.names(), metavar="NAME", help="backbone (see `fidrs models`)")
        p.add_argument("--weights", help="a checkpoint to use instead of the official one")
        p.add_argument("--weights-sha256", metavar="HEX", help="refuse a checkpoint whose sha256 differs")
    export.add_argument("-o", "--output", required=True, help="output .onnx path")

    cache = sub.add_parser("cache", help="feature cache: size, or clear it")
    cache.add_argument("action", choices=["info", "clear"])

    merge = sub.add_parser("merge", help="merge statistics of disjoint image sets (shards) into one .npz")
    merge.add_argument("inputs", nargs="+", help=".npz statistics written by fidrs (they carry their moments)")
    merge.add_argument("-o", "--output", required=True, help="output .npz path")
    return parser


def _options(args: argparse.Namespace) -> dict:
    return {
        "backbone": args.backbone,
        "weights": args.weights,
        "weights_sha256": args.weights_sha256,
        "model": args.model,
        "mode": args.mode,
        "batch_size": args.batch_size,
        "device": args.device,
        "skip_bad": args.skip_bad,
        "pad_color": args.pad_color,
        "max_pixels": args.max_pixels,
        "allow_tf32": args.allow_tf32,
        "progress": args.progress or (not args.no_progress and sys.stderr.isatty()),
        "cache": not args.no_cache,
    }


def _on_ray(args: argparse.Namespace) -> dict | None:
    """The options of a cluster run, or None for a local one."""
    from .errors import InvalidInputError

    if getattr(args, "ray", None) is None:
        if any(getattr(args, k, None) is not None for k in ("workers", "shard_size", "retry_timeout")):
            raise InvalidInputError("--workers, --shard-size and --retry-timeout need --ray")
        return None
    options = _options(args)
    options.update(cache=False, address=args.ray or None, workers=args.workers, shard_size=args.shard_size)
    if args.retry_timeout is not None:
        options["retry_timeout"] = args.retry_timeout
    return options


def _run(args: argparse.Namespace) -> int:
    import fidrs

    cluster = _on_ray(args)
    if cluster is not None and getattr(args, "bootstrap", None):
        raise fidrs.InvalidInputError("--bootstrap needs every feature, which a cluster run does not bring back")

    if args.command == "score":
        if args.bootstrap:
            a, b = fidrs.feature_set(args.a, **_options(args)), fidrs.feature_set(args.b, **_options(args))
            confidence = fidrs.fid_confidence(a, b, rounds=args.bootstrap)
            result = {
                "fid": confidence.pop("fid"),
                "backbone": a.backbone,
                "n_a": len(a),
                "n_b": len(b),
                "mode": a.mode,
                "weights_sha256": a.weights_sha256,
                "method": "auto",
                "skipped": [{"path": p, "reason": r} for p, r in a.skipped + b.skipped],
                "bootstrap": confidence,
            }
        elif cluster is not None:
            from . import distributed

            result = distributed.score_details(args.a, args.b, method=args.method, **cluster)
        else:
            result = fidrs.score_details(args.a, args.b, method=args.method, **_options(args))
        passed = args.max_fid is None or result["fid"] <= args.max_fid
        if args.max_fid is not None:
            result["max_fid"] = args.max_fid
            result["passed"] = passed
        record_run(result, args.a, args.b, jsonl=args.jsonl)
        if args.json:
            print_result(strictjson.dumps(result))
        else:
            print_result(f"{result['fid']:.6f}")
            if "bootstrap" in result:
                bs = result["bootstrap"]
                print(
                    f"95 % interval [{bs['low']:.4f}, {bs['high']:.4f}] over {bs['rounds']} bootstrap rounds; "
                    f"FID at n = " + ", ".join(f"{n}: {v:.3f}" for n, v in bs["fid_at_n"].items()),
                    file=sys.stderr,
                )
            if args.max_fid is not None:
                verdict = "PASS" if passed else "FAIL"
                print(f"{verdict}: FID {result['fid']:.6f} {'<=' if passed else '>'} {args.max_fid}", file=sys.stderr)
        return EXIT_OK if passed else EXIT_ABOVE_THRESHOLD

    if args.command == "stats":
        start = time.perf_counter()
        if cluster is not None:
            from . import distributed

            s = distributed.stats(args.a, **cluster)
        else:
            s = fidrs.stats(args.a, **_options(args))
        s.save(args.output)
        print(
            f"fidrs: saved statistics of {s.n} images to {args.output} ({time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
        )
        return EXIT_OK
    if args.command in ("kid", "is", "pr", "memorization"):
        return _metric(fidrs, args)

    if args.command == "report":
        from pathlib import Path

        from .report import build_report, class_feature_sets

        if not (Path(args.a) / args.reference).is_dir():
            raise fidrs.InvalidInputError(
                f"reference class {args.reference!r}: no folder {Path(args.a) / args.reference}"
            )
        start = time.perf_counter()
        sets = class_feature_sets(args.a, **_options(args))
        result = build_report(
            sets, args.reference, args.output, kid_subset_size=args.kid_subset_size, kid_subsets=args.kid_subsets
        )
        print(
            f"fidrs: report of {sum(result['n'].values())} images in {len(result['classes'])} classes written to "
            f"{args.output} ({time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
        )
        return EXIT_OK

    if args.command == "models":
        return _models(args)

    if args.command == "cache":
        from .cache import cache_info, clear_cache

        if args.action == "clear":
            print(f"fidrs: removed {clear_cache()} feature cache file(s)", file=sys.stderr)
        else:
            print(strictjson.dumps(cache_info(), indent=1))
        return EXIT_OK

    if args.command == "merge":
        merged = fidrs.Stats.load(args.inputs[0])
        for path in args.inputs[1:]:
            merged = merged.merge(fidrs.Stats.load(path))
        merged.save(args.output)
        print(
            f"fidrs: merged {len(args.inputs)} statistics files ({merged.n} images) into {args.output}", file=sys.stderr
        )
        return EXIT_OK
    raise AssertionError(args.command)


def _models(args: argparse.Namespace) -> int:
    from . import catalogue
    from .weights import resolve_model

    if args.models_action in (None, "list"):
        if getattr(args, "json", False):
            from . import backbones

            print(strictjson.dumps({"models": [catalogue.status(n) for n in backbones.names(aliases=False)]}))
        else:
            print(catalogue.table())
        return EXIT_OK
    model = resolve_model(args.name, args.weights, args.weights_sha256)
    if args.models_action == "fetch":
        print(f"fidrs: {model.backbone.name}: checkpoint {model.checkpoint} (sha256 {model.weights_sha256})")
        print(f"fidrs: {model.backbone.name}: ONNX graph {model.onnx_path}")
        return EXIT_OK
    from .exported import export_model

    for path in export_model(model, args.output):
        print(f"fidrs: wrote {path}", file=sys.stderr)
    return EXIT_OK


def _metric(fidrs, args: argparse.Namespace) -> int:
    start = time.perf_counter()
    options = _options(args)
    if args.command == "is":
        from .metrics import require_class_logits

        require_class_logits(**options)
    a = fidrs.feature_set(args.a, **options)
    b = fidrs.feature_set(args.b, **options) if args.command != "is" else None
    result: dict = {"backbone": a.backbone, "mode": a.mode, "weights_sha256": a.weights_sha256, "n_a": len(a)}
    if b is not None:
        result["n_b"] = len(b)
    if args.command == "kid":
        mean, std = fidrs.kid(a, b, subset_size=args.subset_size, subsets=args.subsets, seed=args.seed)
        result.update(kid=mean, kid_std=std)
        text = f"KID {mean:.6f} ± {std:.6f}"
    elif args.command == "is":
        mean, std = fidrs.inception_score(a, splits=args.splits, seed=args.seed)
        result.update(inception_score=mean, inception_score_std=std)
        text = f"IS {mean:.6f} ± {std:.6f}"
    elif args.command == "pr":
        result.update(fidrs.precision_recall(a, b, k=args.k))
        text = " ".join(f"{k} {result[k]:.4f}" for k in ("precision", "recall", "density", "coverage"))
    else:
        memo = fidrs.memorization(a, b, threshold=args.threshold, top=args.top)
        memo.pop("distances")
        result.update(memo)
        lines = [
            f"{100 * memo['fraction_below_threshold']:.2f} % of generated images are within cosine distance "
            f"{args.threshold} of a training image; closest pairs:"
        ]
        lines += [f"  {p['cosine_distance']:.5f}  {p['generated']}  ~  {p['training']}" for p in memo["closest_pairs"]]
        text = "\n".join(lines)
    result["seconds"] = time.perf_counter() - start
    print(strictjson.dumps(result) if args.json else text)
    return EXIT_OK


def _execute(args: argparse.Namespace) -> int:
    """Run one command and map every outcome to an exit code and at most a few lines on stderr."""
    from . import config
    from .errors import DecodeError, FidrsError, IncompatibleStatsError, InvalidInputError, WeightsError

    try:
        config.validate()
        # Ray prints on its own (worker deaths, lost nodes): on a cluster run stdout gets the result alone.
        with results_only_on_stdout(enabled=getattr(args, "ray", None) is not None):
            return _run(args)
    except (InvalidInputError, IncompatibleStatsError, WeightsError, DecodeError) as e:
        print(f"fidrs: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FidrsError as e:
        print(f"fidrs: error: {e}", file=sys.stderr)
        return EXIT_INTERNAL
    except BrokenPipeError:
        # Whoever read our output stopped (`| head`): say nothing more, and keep Python's exit-time flush of
        # stdout from raising again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ValueError, OSError) as e:  # unreadable or unwritable paths, bad values: the input, not fidrs
        print(f"fidrs: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("fidrs: error: out of memory", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as e:  # noqa: BLE001 - the CLI's contract: anything unexpected is exit 3
        import traceback

        traceback.print_exc()
        print(f"fidrs: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2
    if args.version:
        import fidrs

        from . import _fidrs

        print(f"fidrs {fidrs.__version__} (JPEG SIMD: {_fidrs.JPEG_SIMD})")
        return EXIT_OK
    if args.command is None:
        parser.print_usage(sys.stderr)
        return EXIT_BAD_INPUT
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"fidrs: warning: {msg}\n"
    from . import _fidrs

    # Ctrl-C ends the process within milliseconds whatever runs (decoding, the network, a download): exit 130,
    # one line, outputs still being written removed. Finished outputs were renamed into place whole.
    signal.signal(signal.SIGINT, lambda *_: None)  # no KeyboardInterrupt traceback racing the native handler
    _fidrs.exit_on_interrupt("fidrs: interrupted")
    return _execute(args)


if __name__ == "__main__":
    sys.exit(main())
