"""The catalogue of published references: `manifests/<collection>.toml`, one per publisher (ADM, clean-fid, EDM,
EDM2, TTUR), shipped in the wheel like the model manifests. A manifest states once what all its files share
(the tool and its protocol, format, licence, citation, size cap, each statistics set's backbone and fidrs mode)
and lists its files (`[[references]]`), or, for clean-fid, the grid its own URL formula spans (`[[grid]]`).

Names are `<collection>/<name>` (`adm/imagenet-256`, `clean-fid/cifar10-train-32-clean`). A name without its
collection is accepted where it is unique (`imagenet-256`; `imagenet-64` is both ADM's and EDM's, so it needs
its collection)."""

from __future__ import annotations

import sys
import urllib.parse
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from ..errors import FidrsError, InvalidInputError
from .provenance import ReferenceProvenance
from .readers import FORMATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

_COLLECTION_FIELDS = {"collection", "tool", "made_by", "published_at", "format", "licence", "citation"}


@dataclass(frozen=True)
class StatisticsSpec:
    """One statistics set of a reference: its label in the file, fidrs' backbone and mode, and the tool's
    protocol in words."""

    label: str
    backbone: str
    mode: str
    protocol: str


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    collection: str
    aliases: tuple[str, ...]
    url: str
    filename: str
    format: str
    max_bytes: int
    sha256: str | None  # published by its maker; None: recorded on first download (trust on first use)
    licence: str
    citation: str
    tool: str
    made_by: str
    published_at: str
    dataset: str
    n: int | None  # images the statistics were computed from, where published (EDM2's files record it)
    images: int | None  # images the file itself holds (ADM's arr_0)
    statistics: tuple[StatisticsSpec, ...]

    def provenance(self) -> dict[str, ReferenceProvenance]:
        """Each statistics set's provenance, by its label in the file."""
        return {
            s.label: ReferenceProvenance(
                tool=self.tool, backbone=s.backbone, mode=s.mode, n=self.n, source=f"catalogue:{self.name}"
            )
            for s in self.statistics
        }


def _broken(collection: str, reason: str) -> FidrsError:
    return FidrsError(f"the reference manifest {collection}.toml is broken ({reason}): reinstall fidrs")


def _statistics(collection: str, table: dict[str, Any]) -> tuple[StatisticsSpec, ...]:
    out = []
    for label, spec in table.items():
        if set(spec) != {"backbone", "mode", "protocol"}:
            raise _broken(collection, f"statistics {label!r} needs exactly backbone, mode, protocol")
        out.append(StatisticsSpec(label, spec["backbone"], spec["mode"], spec["protocol"]))
    return tuple(out)


def _filename(collection: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    if parts.scheme not in ("http", "https") or not name or name.startswith(".") or "/" in name or "\\" in name:
        raise _broken(collection, f"{url!r} is not an http(s) URL of a file")
    return name


def _entry(m: dict[str, Any], spec: dict[str, Any], statistics, *, aliases=(), **fields) -> CatalogueEntry:
    collection = m["collection"]
    url = spec.get("url") or fields.pop("url")
    sha256 = spec.get("sha256")
    if sha256 is not None and (len(sha256) not in (8, 64) or any(c not in "0123456789abcdef" for c in sha256)):
        raise _broken(collection, f"{spec['name']}: sha256 {sha256!r} is not hex")
    values = {
        "name": f"{collection}/{spec['name']}",
        "collection": collection,
        "aliases": tuple(f"{collection}/{a}" for a in aliases),
        "url": url,
        "filename": _filename(collection, url),
        "format": spec.get("format", m.get("format")),
        "max_bytes": int(spec.get("max_bytes", m.get("max_bytes", 0))),
        "sha256": sha256,
        "licence": m["licence"],
        "citation": m["citation"],
        "tool": m["tool"],
        "made_by": m["made_by"],
        "published_at": m["published_at"],
        "dataset": spec["dataset"],
        "n": spec.get("n", m.get("n")),
        "images": spec.get("images", m.get("images")),
        "statistics": statistics,
    }
    values.update(fields)
    if values["format"] not in FORMATS:
        raise _broken(collection, f"{values['name']}: unknown format {values['format']!r}")
    if values["max_bytes"] <= 0:
        raise _broken(collection, f"{values['name']}: no size cap")
    return CatalogueEntry(**values)


def _listed(m: dict[str, Any]) -> list[CatalogueEntry]:
    statistics = _statistics(m["collection"], m["statistics"])
    return [_entry(m, spec, statistics) for spec in m["references"]]


def _grid(m: dict[str, Any]) -> list[CatalogueEntry]:
    """clean-fid's grid, at the URLs `cleanfid/features.py: get_reference_statistics` builds:
    `{name}_{mode}{model_modifier}_{split}_{res}.npz`, lower case, `_kid` before `.npz` for KID features."""
    out = []
    for row in m["grid"]:
        for model, model_spec in m["models"].items():
            for mode in row["modes"]:
                fidrs_mode, protocol = m["modes"][mode], m["modes_protocol"][mode]
                for kid in (False, True) if row.get("kid") else (False,):
                    suffix = "_kid" if kid else ""
                    file = f"{row['dataset']}_{mode}{model_spec['modifier']}_{row['split']}_{row['res']}{suffix}.npz"
                    short = f"{row['dataset']}-{row['split']}-{row['res']}"
                    modifier = f"-{model}" if model_spec["modifier"] else ""
                    tail = modifier + ("-kid" if kid else "")
                    label = "feats" if kid else "mu,sigma"
                    stats = (StatisticsSpec(label, model_spec["backbone"], fidrs_mode, protocol),)
                    spec = {
                        "name": f"{short}-{mode}{tail}",
                        "dataset": f"{row['dataset']} {row['split']}, {row['res']}²",
                    }
                    cap = m["max_bytes"]
                    if kid:
                        cap = int(row["n"]) * m["kid_bytes_per_image"] + m["kid_bytes_extra"]
                    out.append(
                        _entry(
                            m,
                            spec,
                            stats,
                            aliases=(f"{short}{tail}",) if mode == m["default_mode"] else (),
                            url=m["url"].format(file=file.lower()),
                            format="clean-fid-kid" if kid else "mu-sigma",
                            max_bytes=cap,
                            n=int(row["n"]),
                        )
                    )
    return out


@cache
def _manifest(collection: str) -> dict[str, Any]:
    resource = files("fidrs") / "references" / "manifests" / f"{collection}.toml"
    try:
        m = tomllib.loads(resource.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise _broken(collection, str(e)) from None
    missing = _COLLECTION_FIELDS - set(m) - {"format"}
    if missing or m.get("collection") != collection:
        raise _broken(collection, f"missing {sorted(missing)} or a collection name other than its file's")
    return m


def collections() -> list[str]:
    folder = files("fidrs") / "references" / "manifests"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


@cache
def entries() -> dict[str, CatalogueEntry]:
    """Every catalogue entry, by canonical name."""
    out: dict[str, CatalogueEntry] = {}
    for collection in collections():
        m = _manifest(collection)
        try:
            listed = _grid(m) if "grid" in m else _listed(m)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise _broken(collection, f"{type(e).__name__}: {e}") from None
        for entry in listed:
            if entry.name in out:
                raise _broken(collection, f"{entry.name} is listed twice")
            out[entry.name] = entry
    return out


@cache
def _names() -> dict[str, list[str]]:
    """Every accepted name → the canonical names it may mean: canonical names and aliases, and each without
    its collection."""
    table: dict[str, list[str]] = {}
    for entry in entries().values():
        for name in (entry.name, *entry.aliases):
            for key in {name, name.split("/", 1)[1]}:
                table.setdefault(key, [])
                if entry.name not in table[key]:
                    table[key].append(entry.name)
    return table


def lookup(name: str) -> CatalogueEntry:
    """The entry `name` means (canonical, alias, or unique without its collection)."""
    if name in entries():
        return entries()[name]
    candidates = _names().get(name, [])
    if len(candidates) == 1:
        return entries()[candidates[0]]
    if candidates:
        raise InvalidInputError(f"reference {name!r} is ambiguous: {', '.join(sorted(candidates))}")
    near = sorted(n for n in entries() if name.lower() in n.lower())[:8]
    hint = f"; did you mean {', '.join(near)}?" if near else "; `fidrs refs list` lists them"
    raise InvalidInputError(f"unknown reference {name!r}{hint}")


def list_references(collection: str | None = None) -> list[str]:
    """Canonical names of every catalogued reference (of one collection)."""
    return sorted(n for n, e in entries().items() if collection is None or e.collection == collection)


__all__ = ["CatalogueEntry", "StatisticsSpec", "collections", "entries", "list_references", "lookup"]
