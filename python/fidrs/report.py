"""`fidrs report`: compare every class of a dataset with a reference class, from one feature pass.

Writes report.json, fid_vs_reference.png, fid_matrix.png, pca_variance.png, tsne.png and report.html (the
PNGs embedded, so the page is one self-contained file). Needs the optional extra: pip install 'fidrs[report]'.

The output folder may not lie inside the dataset (its PNGs would be read as images of a class on the next run);
class names are drawn as plain text (never parsed as matplotlib math: `$\\foo{$` is a name like any other); each
class needs at least 2 images (a covariance), which is checked before the feature pass.
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _fidrs, strictjson
from .display import display, fixed
from .errors import EmptyInputError, InvalidInputError
from .feature_sets import FeatureSet
from .files import atomic_output, atomic_write_bytes, is_within
from .frechet import frechet_distance
from .metrics.cmmd import BATCH_REMAINDER, cmmd_from_embeddings, used_rows
from .metrics.kid import SUBSET_SIZE, SUBSETS, kid_from_features

# t-SNE's usual perplexity; with fewer images it is lowered to (n - 1) / 3 (the neighbourhood a point's
# perplexity describes must hold 3 × perplexity others), and report.json records the one used.
TSNE_PERPLEXITY = 30.0
# Images a class needs: two for a covariance (FID) and for a KID subset.
MIN_CLASS_IMAGES = 2


def _require_plotting():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise InvalidInputError(f"fidrs report needs the optional extra: pip install 'fidrs[report]' ({e})") from None
    return matplotlib, plt, TSNE


def class_folders(root: str | Path, classes=None) -> dict[str, str]:
    """Each class subfolder of `root` by name (sorted; `classes`: only these)."""
    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"{display(root)}: not a folder of class subfolders")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is not None:
        found = [c for c in found if c in set(classes)]
    if not found:
        raise EmptyInputError(f"{display(root)}: no class subfolders")
    return {c: str(root / c) for c in found}


def check_reference(root: str | Path, reference: str) -> None:
    """The reference class must be a subfolder of `root` (checked before any image is read)."""
    if not (Path(root) / reference).is_dir():
        raise InvalidInputError(f"reference class {reference!r}: no folder {display(Path(root) / reference)}")


def check_output_folder(root: str | Path, classes: dict[str, str], out_dir: str | Path) -> None:
    """The report may not be written inside the dataset: not in `root`, nor in a class folder (which may be a
    link to a folder elsewhere), where its PNGs would be read as images on the next run. Nor onto a file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{display(out)}: not a folder; the report is written to a folder of files")
    for folder in (root, *classes.values()):
        if is_within(out, folder):
            raise InvalidInputError(
                f"{display(out)}: the output folder is inside the dataset ({display(folder)}); its PNGs would be "
                "read as images of a class on the next run: write the report elsewhere"
            )


def check_class_sizes(sizes: dict[str, int], folders: dict[str, str] | None = None) -> None:
    """Every class needs MIN_CLASS_IMAGES images (a covariance, a KID subset): else an error naming it."""
    for name, n in sizes.items():
        if n < MIN_CLASS_IMAGES:
            where = f" ({display(folders[name])})" if folders else ""
            raise InvalidInputError(
                f"class {display(name)!r}{where} has {n} usable image(s); a report needs at least "
                f"{MIN_CLASS_IMAGES} per class (a covariance): add images or remove the class"
            )


def tsne_perplexity(n: int) -> float:
    """The t-SNE perplexity for `n` points: TSNE_PERPLEXITY, lowered to (n - 1) / 3 for few images."""
    return min(TSNE_PERPLEXITY, max(1.0, (n - 1) / 3))


def _feature_label(backbone: str | None) -> str:
    return {"inception": "pool3 features"}.get(backbone or "inception", f"{backbone} features")


def build_report(
    sets: dict[str, FeatureSet],
    reference: str,
    out_dir: str | Path,
    *,
    kid_subset_size: int = SUBSET_SIZE.default,
    kid_subsets: int = SUBSETS.default,
    cmmd_batch_remainder: str = BATCH_REMAINDER.default,
    tsne_seed: int = 0,
) -> dict[str, Any]:
    """Compute the numbers and write the files; returns what report.json holds."""
    if reference not in sets:
        raise InvalidInputError(f"reference class {reference!r} not among {sorted(sets)}")
    check_class_sizes({c: len(s) for c, s in sets.items()})  # after skip_bad left files out
    matplotlib, plt, TSNE = _require_plotting()
    start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{display(out)}: not a folder; the report is written to a folder of files")
    out.mkdir(parents=True, exist_ok=True)
    # Class names are names, not matplotlib math: `$…$` in one would be parsed (and `$\foo{$` abort the report).
    with matplotlib.rc_context({"text.parse_math": False}):
        return _build(
            sets, reference, out, plt, TSNE, start, kid_subset_size, kid_subsets, cmmd_batch_remainder, tsne_seed
        )


def _build(
    sets, reference, out, plt, TSNE, start, kid_subset_size, kid_subsets, cmmd_batch_remainder, tsne_seed
) -> dict[str, Any]:
    classes = list(sets)
    stats = {c: s.stats() for c, s in sets.items()}
    # Each class's covariance checked and factorised once, not once per pair: exactly as `frechet_distance` checks
    # an array (around its mean, at the float32 round-off level), so each value is the one that call gives.
    covariances = {
        c: _fidrs.Covariance(s.sigma, s.mu, stored_as="float32", name=f"class {c}: sigma", mean_name=f"class {c}: mu")
        for c, s in stats.items()
    }

    matrix = np.zeros((len(classes), len(classes)))
    for i, a in enumerate(classes):
        for j in range(i, len(classes)):
            b = classes[j]
            matrix[i, j] = matrix[j, i] = frechet_distance(stats[a].mu, covariances[a], stats[b].mu, covariances[b])
    ref_index = classes.index(reference)
    subset = min(kid_subset_size, *(len(s) for s in sets.values()))
    kids = {
        c: kid_from_features(
            sets[reference].features, sets[c].features, subset_size=subset, subsets=kid_subsets, seed=0
        )
        for c in classes
    }
    cmmds = {c: _cmmd_vs_reference(sets[reference], sets[c], c, cmmd_batch_remainder) for c in classes}

    everything = np.concatenate([s.features for s in sets.values()]).astype(np.float64)
    labels = np.concatenate([[i] * len(sets[c]) for i, c in enumerate(classes)])
    centred = everything - everything.mean(0)
    # One symmetric eigenproblem of the covariance gives the explained variance and the principal axes (a thin
    # SVD of the centred features gives the same axes at ~6x the time: 9 s for 4,844 × 2,048).
    eigenvalues, axes = np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
    eigenvalues, axes = eigenvalues[::-1].clip(min=0), axes[:, ::-1]
    cumulative = np.cumsum(eigenvalues) / eigenvalues.sum()
    components_95 = int(np.searchsorted(cumulative, 0.95) + 1)

    # t-SNE on the leading 50 principal components (the usual, much faster, practice); with fewer images than
    # that, on as many as the centred features span.
    perplexity = tsne_perplexity(len(centred))
    embedded = TSNE(n_components=2, init="pca", random_state=tsne_seed, perplexity=perplexity).fit_transform(
        centred @ axes[:, : min(50, len(centred))]
    )

    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    figures = {}

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.bar(classes, matrix[ref_index], color=[cmap(i % cmap.N) for i in range(len(classes))])
    ax.set_ylabel(f"FID vs {reference}")
    ax.tick_params(axis="x", rotation=60)
    ax.set_title(f"FID of each class against {reference}")
    fig.tight_layout()
    figures["fid_vs_reference.png"] = fig

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(matrix, cmap="viridis")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{matrix[i, j]:.0f}", ha="center", va="center", color="w", fontsize=7)
    fig.colorbar(im, ax=ax, label="FID")
    ax.set_title("FID between classes")
    fig.tight_layout()
    figures["fid_matrix.png"] = fig

    fig, ax = plt.subplots(figsize=(7, 4.5))
    shown = min(len(cumulative), max(4 * components_95, 50))
    ax.plot(np.arange(1, shown + 1), cumulative[:shown])
    ax.axhline(0.95, color="grey", ls="--")
    ax.axvline(components_95, color="red", ls=":", label=f"{components_95} components reach 95 %")
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative explained variance")
    ax.legend()
    ax.set_title(f"PCA of the {_feature_label(sets[reference].backbone)}")
    fig.tight_layout()
    figures["pca_variance.png"] = fig

    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    for i, c in enumerate(classes):
        pts = embedded[labels == i]
        ax.scatter(pts[:, 0], pts[:, 1], s=4, color=cmap(i % cmap.N), label=c)
    ax.legend(markerscale=3, fontsize=7)
    ax.set_title(f"t-SNE of the {_feature_label(sets[reference].backbone)}")
    fig.tight_layout()
    figures["tsne.png"] = fig

    for name, fig in figures.items():
        with atomic_output(out / name) as f:
            fig.savefig(f, dpi=110, format="png")
        plt.close(fig)

    report = {
        "reference": reference,
        "classes": classes,
        "n": {c: len(s) for c, s in sets.items()},
        "backbone": sets[reference].backbone,
        "mode": sets[reference].mode,
        "weights_sha256": sets[reference].weights_sha256,
        "fid_vs_reference": {c: float(matrix[ref_index, i]) for i, c in enumerate(classes)},
        "kid_vs_reference": {
            c: {"mean": m, "std": s, "subset_size": subset, "subsets": kid_subsets} for c, (m, s) in kids.items()
        },
        "cmmd_vs_reference": cmmds,
        "fid_matrix": matrix.tolist(),
        "pca": {"components_for_95_percent": components_95, "cumulative_explained_variance": cumulative[:200].tolist()},
        "tsne": {"perplexity": perplexity, "seed": tsne_seed},
        "seconds_after_features": time.perf_counter() - start,
    }
    atomic_write_bytes(out / "report.json", strictjson.dumps(report, indent=1).encode())
    _write_html(out, report, list(figures))
    return report


def _cmmd_vs_reference(reference: FeatureSet, other: FeatureSet, name: str, rule: str) -> dict[str, Any]:
    """CMMD (the RBF MMD of `fidrs.cmmd`; CMMD proper on clip-vitl14-336) of a class against the reference, or
    None with the reason when the batch-remainder rule leaves no image of it."""
    try:
        x, y = used_rows(reference, rule, "the reference class"), used_rows(other, rule, name)
    except InvalidInputError as e:
        return {"value": None, "n_used": None, "batch_remainder": rule, "note": str(e)}
    value = cmmd_from_embeddings(x, y)["value"]
    return {"value": value, "n_used": [len(x), len(y)], "batch_remainder": rule}


def _optional(value: float | None) -> str:
    return "—" if value is None else fixed(value, 5)


def _write_html(out: Path, report: dict[str, Any], images: list[str]) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{report['n'][c]}</td><td>{fixed(report['fid_vs_reference'][c], 4)}</td>"
        f"<td>{fixed(report['kid_vs_reference'][c]['mean'], 5)} ± {fixed(report['kid_vs_reference'][c]['std'], 5)}</td>"
        f"<td>{_optional(report['cmmd_vs_reference'][c]['value'])}</td></tr>"
        for c in report["classes"]
    )
    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode((out / name).read_bytes()).decode()}"><figcaption>{name}</figcaption></figure>'
        for name in images
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>fidrs report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 10px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>fidrs report: every class against {html.escape(report["reference"])}</h1>
<p>backbone {html.escape(str(report["backbone"]))}, mode {html.escape(report["mode"])},
weights sha256 {report["weights_sha256"][:16]}…;
{report["pca"]["components_for_95_percent"]} principal components carry 95 % of the feature variance.</p>
<table><tr><th>class</th><th>n</th><th>FID</th><th>KID</th><th>CMMD</th></tr>{rows}</table>{figures}</body></html>"""
    atomic_write_bytes(out / "report.html", page.encode())
