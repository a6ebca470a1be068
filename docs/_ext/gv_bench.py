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

__all__ = ["load_results", "render_benchmarks"]

_LIST_KEYS = ("results", "records", "rows", "benchmarks", "data", "cases", "entries")
_META_KEYS = ("meta", "metadata", "env", "environment", "machine", "config", "system")
_PROVIDER_KEYS = ("provider", "backend", "impl", "implementation", "method", "variant", "library")
_CASE_KEYS = (
    "op", "name", "case", "benchmark", "bench", "layer", "graph", "shape", "config", "C", "channels", "mode",
    "direction", "pass",
)
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
    case_keys = [
        k for k in _columns(records)
        if k in _CASE_KEYS or (k != provider_key and isinstance(records[0].get(k), str))
    ]
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


_META_SHOWN = ("device", "device_name", "commit", "time_utc", "torch", "triton", "torch_geometric", "torch_scatter",
               "torch_sparse", "torch_threads", "cpu_count", "copy_gbs")


def _is_ops_format(data: object) -> bool:
    """The layout of ``benchmarks/bench_*.py``: ``{"metadata", "rows": [{"op", "provider", "fwd_ms", ...}]}``."""
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or not data["rows"]:
        return False
    rows = [r for r in data["rows"] if isinstance(r, dict)]
    return bool(rows) and all("provider" in r for r in rows) and any("fwd_ms" in r for r in rows)


def _ms(row: dict, prefix: str) -> str:
    t = row.get(f"{prefix}_ms")
    if not isinstance(t, (int, float)):
        return "\\-"
    lo, hi = row.get(f"{prefix}_p20_ms"), row.get(f"{prefix}_p80_ms")
    spread = f" ({_fmt(lo)}-{_fmt(hi)})" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else ""
    return f"{_fmt(t)}{spread}"


def _plot_ops(rows: list[dict], out_png: str, title: str, stat: str) -> bool:
    ops = []
    for r in rows:
        if isinstance(r.get("fwd_ms"), (int, float)) and r.get("op") not in ops:
            ops.append(r.get("op"))
    if not ops:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(ops), 1, figsize=(10, 2.6 * len(ops) + 0.6), dpi=100, squeeze=False)
    for ax, op in zip(axes[:, 0], ops):
        sub = [r for r in rows if r.get("op") == op and isinstance(r.get("fwd_ms"), (int, float))]
        configs = list(dict.fromkeys(str(r.get("config", "")) for r in sub))
        providers = list(dict.fromkeys(str(r.get("provider")) for r in sub))
        width = 0.8 / max(len(providers), 1)
        for j, prov in enumerate(providers):
            xs, ys = [], []
            for i, cfg in enumerate(configs):
                match = [r for r in sub if str(r.get("provider")) == prov and str(r.get("config", "")) == cfg]
                if match and match[0]["fwd_ms"] > 0:
                    xs.append(i + (j - (len(providers) - 1) / 2) * width)
                    ys.append(match[0]["fwd_ms"])
            ours = prov.startswith("graphvision")
            ax.bar(xs, ys, width=width, label=prov, color=f"C{j % 10}", edgecolor="black" if ours else "none",
                   linewidth=0.8, hatch=None if ours else "//")
        ax.set_yscale("log")
        ax.set_ylabel(f"forward ms ({stat})", fontsize=8)
        ax.set_title(str(op), fontsize=9, loc="left")
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels(configs, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out_png), exist_ok=True)
    tmp = f"{out_png}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, out_png)
    return True


def _render_ops(data: dict, name: str, outdir: str, rel_prefix: str) -> list[str]:
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    rows = [r for r in data["rows"] if isinstance(r, dict)]
    args = meta.get("args") if isinstance(meta.get("args"), dict) else {}
    stat = args.get("stat") or ("median" if str(meta.get("device", "")).startswith("cuda") else "min")
    lines: list[str] = []
    shown = [(k, meta[k]) for k in _META_SHOWN if k in meta and meta[k] not in (None, "")]
    if shown:
        lines += ["*Run:* " + "; ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in shown) + ".", ""]
    lines += [
        f"Times in ms: the {stat} of repeated calls, with the 20th-80th percentile range in brackets. "
        "Peak memory in MB above the inputs (outputs included). A provider that disagreed with the "
        "first one, or could not run, is listed with the reason and not timed. In the plot, graphvision's "
        "backends are solid bars, the baselines hatched.",
        "",
    ]
    png = f"bench_{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.png"
    try:
        if _plot_ops(rows, os.path.join(outdir, png), name.replace("_", " "), stat):
            lines += [f".. image:: {rel_prefix}/{png}", f"   :alt: forward time per provider, {name}", ""]
    except Exception:  # the tables are the result; a plot is a bonus
        pass
    graphs = data.get("graphs")
    if isinstance(graphs, list) and graphs and all(isinstance(g, dict) for g in graphs):
        lines += ["**Graphs** (``GraphStructure`` build time: sorting to CSR, transpose and neighbour table, "
                  "once per graph):", ""]
        cols = [c for c in ("name", "kind", "n", "e", "c", "conversion_ms") if any(c in g for g in graphs)]
        titles = {"name": "graph", "n": "nodes", "e": "edges", "c": "C", "conversion_ms": "build ms"}
        lines += [".. list-table::", "   :header-rows: 1", "   :class: gv-bench", ""]
        lines.append("   * - " + "\n     - ".join(titles.get(c, c) for c in cols))
        for g in graphs:
            lines.append("   * - " + "\n     - ".join(_fmt(g.get(c)) or "\\-" for c in cols))
        lines.append("")
    for op in dict.fromkeys(str(r.get("op", "")) for r in rows):
        sub = [r for r in rows if str(r.get("op", "")) == op]
        lines += [f"**{_fmt(op)}**", ""]
        header = ["config", "provider", "forward ms", "forward+backward ms", "peak MB (fwd / fwd+bwd)",
                  "GB/s (% of copy)", "note"]
        lines += [".. list-table::", "   :header-rows: 1", "   :class: gv-bench", ""]
        lines.append("   * - " + "\n     - ".join(header))
        order = list(dict.fromkeys(str(x.get("config")) for x in sub))
        sub = sorted(sub, key=lambda r: order.index(str(r.get("config"))))  # stable: keeps provider order
        previous = None
        for r in sub:
            config = _fmt(r.get("config")) if r.get("config") != previous else ""
            previous = r.get("config")
            peak = (f"{_fmt(r.get('peak_fwd_mb'))} / {_fmt(r.get('peak_full_mb'))}"
                    if isinstance(r.get("peak_fwd_mb"), (int, float)) else "\\-")
            gbs = (f"{_fmt(r.get('fwd_gbs'))} ({_fmt(r.get('fwd_pct_copy'))} %)"
                   if isinstance(r.get("fwd_gbs"), (int, float)) else "\\-")
            prov = _fmt(r.get("provider"))
            if str(r.get("provider", "")).startswith("graphvision"):
                prov = f"**{prov}**"
            cells = [config, prov, _ms(r, "fwd"), _ms(r, "full"), peak, gbs, _fmt(r.get("error")) or ""]
            cells = [c if c or i == 0 else "\\-" for i, c in enumerate(cells)]
            lines.append("   * - " + "\n     - ".join(cells))
        lines.append("")
    return lines


_SECTION = "-~^"

#: The docs' source folder (``docs/``): Markdown includes are written relative to it.
DOCS_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def md_include(path: str, srcdir: str = DOCS_SRC) -> str:
    """An ``include`` directive that has myst-parser read the Markdown file ``path``.

    The path is written as Sphinx reads include paths, relative to the source folder with a
    leading ``/``, so the directive works from any page (and from a ``.inc`` file) that includes it.
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(srcdir)).replace(os.sep, "/")
    return f".. include:: /{rel}\n   :parser: myst_parser.sphinx_\n"


def _render_file(
    path: str, results_dir: str, outdir: str, rel_prefix: str, level: int, srcdir: str = DOCS_SRC
) -> list[str]:
    """One result file (JSON, or Markdown without a JSON twin) as a section of depth ``level``."""
    rel = os.path.relpath(path, results_dir)
    stem = os.path.splitext(os.path.basename(rel))[0]
    name = os.path.splitext(rel)[0].replace(os.sep, "__")
    title = stem.replace("_", " ")
    lines = [title, _SECTION[level] * max(len(title), 4), ""]
    if path.endswith(".md"):
        return lines + [md_include(path, srcdir), ""]
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        if _is_ops_format(raw):
            return lines + [f"Source: ``benchmarks/results/{rel}``.", ""] + _render_ops(raw, name, outdir, rel_prefix)
        meta, records = load_results(path)
    except Exception as exc:  # never fail the build on a result file
        return lines + [f"*Could not read* ``{rel}``: {_fmt(type(exc).__name__)}.", ""]
    lines += [f"Source: ``benchmarks/results/{rel}``.", ""]
    if meta:
        shown = list(meta.items())[:12]
        lines += [f":{_fmt(k).replace(':', ' ')}: {_fmt(v) or '-'}" for k, v in shown] + [""]
    if not records:
        return lines + ["No records in this file.", ""]
    png = f"bench_{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.png"
    try:
        plotted = _plot(records, os.path.join(outdir, png), title)
    except Exception:  # a plot is a bonus; the table is the result
        plotted = False
    if plotted:
        lines += [f".. image:: {rel_prefix}/{png}", f"   :alt: {title}", ""]
    return lines + _table(records, _columns(records))


def render_benchmarks(results_dir: str, outdir: str, rel_prefix: str, srcdir: str = DOCS_SRC) -> str:
    """reST for every result file in ``results_dir``; plots are written to ``outdir``.

    Files directly in ``results_dir`` come first, one section each. Each run folder
    (``results/h200_run1_<date>/``) is one section, opened by its ``README.md`` and holding its
    files as subsections. A Markdown file is shown only when it has no JSON twin.

    Args:
        results_dir: ``benchmarks/results``.
        outdir: Where to write plot PNGs (inside the Sphinx source tree).
        rel_prefix: The path of ``outdir`` as seen from the including page (for ``.. image::``).
        srcdir: The Sphinx source folder, for the Markdown files' include paths.

    Returns:
        reST source (a note when there are no results).
    """
    found = glob.glob(os.path.join(results_dir, "**", "*.json"), recursive=True)
    found += glob.glob(os.path.join(results_dir, "**", "*.md"), recursive=True)
    json_stems = {os.path.splitext(p)[0] for p in found if p.endswith(".json")}
    shown = sorted(
        p for p in found
        if p.endswith(".json")
        or (os.path.splitext(p)[0] not in json_stems and os.path.basename(p).lower() != "readme.md")
    )
    if not shown:
        return (
            ".. note::\n\n   No benchmark results are committed yet. Run the benchmarks (see\n"
            "   ``benchmarks/README.md``) and rebuild the docs; they are read from\n"
            "   ``benchmarks/results/*.json``.\n"
        )
    lines: list[str] = []
    folders: dict[str, list[str]] = {}
    for path in shown:
        folder = os.path.relpath(os.path.dirname(path), results_dir)
        folders.setdefault("" if folder == "." else folder, []).append(path)
    for path in folders.pop("", []):
        lines += _render_file(path, results_dir, outdir, rel_prefix, level=0, srcdir=srcdir)
    for folder in sorted(folders, reverse=True):  # run folders named by date: newest first
        readme = os.path.join(results_dir, folder, "README.md")
        title = f"Run {folder}"
        lines += [title, _SECTION[0] * len(title), ""]
        if os.path.exists(readme):
            lines += [md_include(readme, srcdir), ""]
        for path in folders[folder]:
            lines += _render_file(path, results_dir, outdir, rel_prefix, level=1, srcdir=srcdir)
    return "\n".join(lines)
