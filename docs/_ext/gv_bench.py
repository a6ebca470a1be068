"""Render ``benchmarks/results/*.json`` as reST tables and a matplotlib plot at build time.

The benchmark scripts write one JSON file per run. This module reads whatever is there and
never fails the build on an unexpected layout: a file it cannot read becomes a note on the
page. Layouts understood:

- a list of records (dicts), or a dict holding such a list under ``results``, ``records``,
  ``rows``, ``benchmarks`` or ``data``; the other scalar entries of the dict (or a ``meta`` /
  ``metadata`` / ``env`` dict) are shown as the run's metadata;
- records are flattened one level (``{"fwd": {"median_ms": 1}}`` becomes ``fwd.median_ms``).

The plot shows, per benchmark case, the median time of each provider (log scale), when the
records have a time column (``median_ms``, ``fwd_median_ms``, ``time_ms``, ... ) and a
provider column (``provider``, ``backend``, ``impl``, ``method``).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re

from gv_md2rst import md_to_rst

__all__ = ["load_results", "render_benchmarks"]

_LIST_KEYS = ("results", "records", "rows", "benchmarks", "data", "cases", "entries")
_META_KEYS = ("meta", "metadata", "env", "environment", "machine", "config", "system")
_PROVIDER_KEYS = ("provider", "backend", "impl", "implementation", "method", "variant", "library")
_CASE_KEYS = ("op", "name", "case", "benchmark", "bench", "layer", "graph", "shape", "config", "C", "channels", "mode", "direction", "pass")
_MAX_COLUMNS = 14


def _flatten(record: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix:
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (str, int, float, bool)) or v is None:
            out[key] = v
        elif isinstance(v, (list, tuple)) and len(v) <= 6 and all(isinstance(x, (int, float, str)) for x in v):
            out[key] = "x".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else ", ".join(map(str, v))
    return out


def load_results(path: str) -> tuple[dict, list[dict]]:
    """Return ``(metadata, records)`` of one JSON result file (raises on unreadable files)."""
    with open(path) as f:
        data = json.load(f)
    meta: dict = {}
    records: list = []
    if isinstance(data, list):
        records = data
    elif isinstance(data, dict):
        for k in _LIST_KEYS:
            if isinstance(data.get(k), list):
                records = data[k]
                break
        else:
            lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
            if lists:
                records = lists[0]
        for k, v in data.items():
            if k in _META_KEYS and isinstance(v, dict):
                meta.update(_flatten(v))
            elif isinstance(v, (str, int, float, bool)):
                meta[k] = v
    recs = [_flatten(r) for r in records if isinstance(r, dict)]
    return meta, recs


def _fmt(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v == 0:
            return "0"
        mag = abs(v)
        if mag >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    s = " ".join(str(v).split())
    return re.sub(r"([\\`*_|])", r"\\\1", s) if s else ""


def _columns(records: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols.append(k)
    # Drop columns that are constant across records when there are too many columns.
    if len(cols) > _MAX_COLUMNS:
        varying = [c for c in cols if len({repr(r.get(c)) for r in records}) > 1]
        cols = varying[:_MAX_COLUMNS] if varying else cols[:_MAX_COLUMNS]
    return cols


def _table(records: list[dict], cols: list[str]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", "   :class: gv-bench", ""]
    lines.append("   * - " + "\n     - ".join(_fmt(c) for c in cols))
    for r in records:
        lines.append("   * - " + "\n     - ".join(_fmt(r.get(c)) or "\\-" for c in cols))
    return lines + [""]


def _time_key(records: list[dict]) -> str | None:
    keys = [k for k in _columns(records) if isinstance(records[0].get(k), (int, float))]
    for pattern in (r"^median_ms$", r"median.*ms", r"^fwd.*median", r"median", r"time_ms", r"_ms$", r"ms"):
        for k in keys:
            if re.search(pattern, k) and not re.search(r"iqr|std|spread|min|max|p\d\d", k):
                return k
    return None


def _plot(records: list[dict], out_png: str, title: str) -> bool:
    time_key = _time_key(records)
    provider_key = next((k for k in _PROVIDER_KEYS if any(k in r for r in records)), None)
    if not time_key or not provider_key:
        return False
    case_keys = [k for k in _columns(records) if k in _CASE_KEYS or (k not in (provider_key,) and isinstance(records[0].get(k), str))]
    case_keys = [k for k in case_keys if k != provider_key and len({str(r.get(k)) for r in records}) > 1]
    cases: list[str] = []
    providers: list[str] = []
    values: dict[tuple[str, str], float] = {}
    for r in records:
        t = r.get(time_key)
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
            continue
        case = " / ".join(str(r.get(k)) for k in case_keys) or "all"
        prov = str(r.get(provider_key))
        if case not in cases:
            cases.append(case)
        if prov not in providers:
            providers.append(prov)
        values[(case, prov)] = float(t)
    if not values:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = cases[:24]
    width = 0.8 / max(len(providers), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(cases) * max(1, len(providers) / 2) + 2), 4.2), dpi=110)
    for j, prov in enumerate(providers):
        xs = [i + (j - (len(providers) - 1) / 2) * width for i, c in enumerate(cases) if (c, prov) in values]
        ys = [values[(c, prov)] for c in cases if (c, prov) in values]
        ax.bar(xs, ys, width=width, label=prov)
    ax.set_yscale("log")
    ax.set_ylabel(time_key.replace("_", " "))
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=35, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=min(len(providers), 4))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out_png), exist_ok=True)
    tmp = f"{out_png}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, metadata={"Software": None})  # no timestamp, so an unchanged plot is byte-identical
    plt.close(fig)
    os.replace(tmp, out_png)
    return True


def render_benchmarks(results_dir: str, outdir: str, rel_prefix: str) -> str:
    """reST for every result file in ``results_dir``; plots are written to ``outdir``.

    Args:
        results_dir: ``benchmarks/results``.
        outdir: Where to write plot PNGs (inside the Sphinx source tree).
        rel_prefix: The path of ``outdir`` as seen from the including page (for ``.. image::``).

    Returns:
        reST source (a note when there are no results).
    """
    files = sorted(glob.glob(os.path.join(results_dir, "*.json")))
    md_files = sorted(glob.glob(os.path.join(results_dir, "*.md")))
    if not files and not md_files:
        return (
            ".. note::\n\n   No benchmark results are committed yet. Run the benchmarks (see\n"
            "   ``benchmarks/README.md``) and rebuild the docs; they are read from\n"
            "   ``benchmarks/results/*.json``.\n"
        )
    lines: list[str] = []
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        title = name.replace("_", " ")
        lines += [title, "-" * len(title), ""]
        try:
            meta, records = load_results(path)
        except Exception as exc:  # never fail the build on a result file
            lines += [f"*Could not read* ``{os.path.basename(path)}``: {_fmt(type(exc).__name__)}.", ""]
            continue
        lines += [f"Source: ``benchmarks/results/{os.path.basename(path)}``.", ""]
        if meta:
            shown = list(meta.items())[:12]
            lines += [f":{_fmt(k).replace(':', ' ')}: {_fmt(v) or '-'}" for k, v in shown] + [""]
        if not records:
            lines += ["No records in this file.", ""]
            continue
        png = f"bench_{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.png"
        try:
            plotted = _plot(records, os.path.join(outdir, png), title)
        except Exception:  # a plot is a bonus; the table is the result
            plotted = False
        if plotted:
            lines += [f".. image:: {rel_prefix}/{png}", f"   :alt: {title}", ""]
        lines += _table(records, _columns(records))
    json_stems = {os.path.splitext(os.path.basename(p))[0] for p in files}
    for path in md_files:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in json_stems or stem.lower() == "readme":
            continue  # the JSON twin is already shown
        title = stem.replace("_", " ")
        lines += [title, "-" * len(title), ""]
        with open(path) as f:
            lines += [md_to_rst(f.read(), top_level=0), ""]
    return "\n".join(lines)
