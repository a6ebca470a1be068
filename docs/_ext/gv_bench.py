"""Render ``benchmarks/results/`` as the docs' benchmark page (reST tables and linear plots).

The benchmark scripts write one JSON file per run (and a Markdown twin). This module reads
whatever is there and never fails the build on an unexpected layout: a file it cannot read
becomes a note on the page, a file it does not know gets a generic section titled by its
Markdown twin's first heading. The page follows a few rules:

- **Readable titles.** Each known file has a title and a group (``RESULT_FILES``, ``GROUPS``);
  a group opens with what it measures. File names appear only as a "Source" line, never as a
  heading. A run folder (``results/<run>/``) takes its title from its ``README.md``.
- **One statistic.** Every time shown is the median of one run's timed calls, with the min-max
  range in brackets (or the 20th-80th percentile where the script did not record the maximum;
  each table says which). Minima and means recorded next to the median are not shown.
- **Ratios from the same run.** Speed-ups are recomputed from the medians: a baseline's median
  divided by graphvision's, against each baseline of the same op, config and run.
- **Linear plots.** One horizontal bar chart of those speed-ups per file, linear axis, each bar
  labelled with its ratio and a line at 1 (equal speed).
- **Bandwidth.** GB/s is the op's compulsory bytes divided by the median forward time; a cell
  above 100 % of the measured copy bandwidth is marked and explained under its table.
- **Provenance.** Each file is tagged with its commit and machine. A file recorded from a tree
  with uncommitted changes (``+dirty`` commit) is flagged as such.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re

__all__ = ["GROUPS", "RESULT_FILES", "load_results", "md_include", "render_benchmarks"]

#: Sections of the page, in order: key -> (title, what the group measures).
GROUPS: dict[str, tuple[str, str]] = {
    "user": (
        "Layers as a user calls them",
        "The end-to-end path a user writes: a ``(B, C, H, W)`` feature map goes through "
        "``graphvision.functional.image_to_graph`` (8-neighbour grid) and the result goes to the "
        "layer. graphvision is timed with the converter's graph (``res.graph``) and with a fresh raw "
        "``edge_index``, against PyG's layer with the same weights on the same nodes and edges. "
        "Forward and forward+backward, on the CPU with one thread.",
    ),
    "pyg": (
        "PyG-twin layers against PyG",
        "graphvision's PyG-twin layers against PyG's layer of the same name, loaded with the same "
        "weights (``strict=True``), on the converter's 8-neighbour grid graph. Forward and "
        "forward+backward, on the CPU with one thread; peak memory is the bytes allocated above "
        "the live set during one call.",
    ),
    "vig": (
        "Vision-GNN layers",
        "The Vision-GNN building blocks (dilated kNN graphs, Grapher, EdgeConv, MRConv, "
        "DynamicEdgeConv) against the ViG reference implementation, a ``cdist`` + ``topk`` kNN and "
        "PyG. Both sides were timed interleaved in the same process, on the CPU with one thread.",
    ),
    "layers": (
        "Layers against PyG, small graphs",
        "Whole layers (GCN, GAT, GCNII, ECC, attention GCN) on a batch of 28x28 pixel grids, "
        "graphvision with batched ``(B, N, C)`` input (``graphvision``) or PyG's flat layout "
        "(``graphvision-flat``), against PyG's layers with copied weights. On the CPU with one thread.",
    ),
    "ops": (
        "Message-passing ops",
        "The ops of ``graphvision.ops`` (scatter, spmm, segment softmax, attention aggregation, "
        "attention pooling), each graphvision backend against PyTorch natives, ``torch.sparse``, "
        "torch-scatter / torch-sparse and PyG's message passing, on small image graphs. Every "
        "provider was checked against the plain-torch reference before it was timed. GB/s is the "
        "op's compulsory bytes (read each input once, write the output once; the byte model of "
        "``benchmarks/README.md``) divided by the median forward time, and its percentage is of the "
        "copy bandwidth the script measured on the same machine at start-up.",
    ),
    "mi": (
        "Mutual-information adjacency",
        "``graphvision.functional.mutual_information_adjacency`` against the naive formula, "
        "an ``einsum`` over the full joint histogram; peak memory shows what the naive joint tensor "
        "costs.",
    ),
    "gpu": (
        "GPU runs",
        "Runs on a GPU, timed with ``triton.testing.do_bench`` (CUDA events, L2 flushed between "
        "calls). A run folder opens with its own notes, which say what was valid in that run.",
    ),
    "other": (
        "Other results",
        "Result files this page has no description for yet, shown with the title their script gave them.",
    ),
}

#: Known result files (path under ``benchmarks/results`` without extension) -> (group, title).
RESULT_FILES: dict[str, tuple[str, str]] = {
    "user_path_cpu": ("user", "Converter to layer, against PyG (CPU)"),
    "pyg_layers_cpu": ("pyg", "GCNConv, GATConv, GATv2Conv and others against PyG (CPU)"),
    "vig_cpu": ("vig", "kNN graphs and Grapher blocks against the ViG reference (CPU)"),
    "layers_cpu_quick": ("layers", "Layers on 16 images of 28x28 against PyG (CPU)"),
    "ops_cpu_quick": ("ops", "Ops on small graphs, CPU, one thread"),
    "ops_cpu_quick_2threads": ("ops", "Ops on small graphs, CPU, two threads"),
    "mutual_information_cpu_quick": ("mi", "2 images of 784 nodes, 64 channels, 16 bins (CPU)"),
    "ops_cuda": ("gpu", "Ops on image graphs (GPU)"),
}

_SECTION = "-~^\""
_LIST_KEYS = ("rows", "results", "records", "benchmarks", "data", "cases", "entries")
_META_KEYS = ("metadata", "meta", "env", "environment", "machine", "system")
#: Titles of the tables a file holds besides its main one (by their key in the JSON).
_LIST_TITLES = {"converters": "Graph construction (image to graph)"}
_STATS = ("median", "min", "max", "p20", "p80")
_HIDDEN = {"n", "e", "c", "nodes", "edges", "channels", "compulsory_mb", "fwd_gbs", "fwd_pct_copy"}
_FIELD_LABELS = {"fwd": "forward", "full": "forward+backward", "time": "time", "ours": "graphvision",
                 "ref": "reference"}
_VALUE_LABELS = {"peak_fwd_mb": "peak MB forward", "peak_full_mb": "peak MB fwd+bwd", "peak_mb": "peak MB",
                 "ours_peak_mb": "peak MB graphvision", "ref_peak_mb": "peak MB reference",
                 "max_rel_err": "max rel. error", "error": "note"}
_PAIRED = (("peak_fwd_mb", "peak_full_mb", "peak MB (fwd / fwd+bwd)"),
           ("ours_peak_mb", "ref_peak_mb", "peak MB (graphvision / reference)"))
_BW_NOTE = (
    "† Above 100 % of the copy bandwidth. The byte model counts each op's compulsory memory traffic "
    "(inputs read once, output written once) and the copy bandwidth is measured with a copy larger "
    "than the caches. These inputs are small ({mb} MB of compulsory bytes) and every timed call "
    "reuses the same tensors, so they stay in the cache (the CPU's last-level cache, a GPU's L2) and "
    "are read faster than main memory allows. Such a cell measures cache bandwidth; it is not an error "
    "in the byte model, and it does not carry over to inputs larger than the cache."
)

#: The docs' source folder (``docs/``): Markdown includes are written relative to it.
DOCS_SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def md_include(path: str, srcdir: str = DOCS_SRC, start_line: int = 0) -> str:
    """An ``include`` directive that has myst-parser read the Markdown file ``path``.

    The path is written as Sphinx reads include paths, relative to the source folder with a
    leading ``/``, so the directive works from any page (and from a ``.inc`` file) that includes it.
    ``start_line`` skips that many lines (a title already used as the section heading).
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(srcdir)).replace(os.sep, "/")
    extra = f"   :start-line: {start_line}\n" if start_line else ""
    return f".. include:: /{rel}\n   :parser: myst_parser.sphinx_\n{extra}"


# -- reading ---------------------------------------------------------------------------------------


def load_results(path: str) -> tuple[dict, dict[str, list[dict]]]:
    """``(metadata, {list key: records})`` of one JSON result file (raises on unreadable files)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    meta: dict = {}
    lists: dict[str, list[dict]] = {}
    if isinstance(data, list):
        lists["rows"] = [r for r in data if isinstance(r, dict)]
    elif isinstance(data, dict):
        for k, v in data.items():
            if k in _META_KEYS and isinstance(v, dict):
                meta.update(v)
            elif isinstance(v, (str, int, float, bool)) or v is None:
                meta[k] = v
            elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                lists[k] = v
        main = next((k for k in _LIST_KEYS if k in lists), None)
        if main is not None:  # the main table first
            lists = {main: lists[main], **{k: v for k, v in lists.items() if k != main}}
    return meta, lists


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _timing_of(d: dict) -> dict | None:
    """``{"median", "min", ...}`` from a dict holding ``median_ms`` (and maybe ``min_ms``, ...)."""
    t = {s: d[f"{s}_ms"] for s in _STATS if _num(d.get(f"{s}_ms"))}
    return t if "median" in t else None


def _normalise(record: dict, stat: str) -> dict:
    """Split a record into ids (strings), timings per field, other values and raw speed-up dicts."""
    ids: dict = {}
    times: dict[str, dict] = {}
    values: dict = {}
    flat: dict[str, dict] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            t = _timing_of(v)
            if t is not None:
                times[k[:-3] if k.endswith("_ms") else k] = t
            elif all(isinstance(x, dict) for x in v.values()) and v:
                melted = {name: _timing_of(x) for name, x in v.items()}
                if all(melted.values()):
                    times.update({f"@{name}": t for name, t in melted.items()})  # provider-keyed
            continue
        if re.search(r"speedup|ratio", k) or k in _HIDDEN:
            continue
        m = re.fullmatch(r"(.*?)_?(median|min|max|p20|p80|mean|std|iqr)_ms", k)
        if m and _num(v):
            flat.setdefault(m.group(1) or "time", {})[m.group(2)] = v
            continue
        m = re.fullmatch(r"(.+)_ms", k)
        if m and _num(v):
            flat.setdefault(m.group(1), {})["headline"] = v
            continue
        if isinstance(v, str):
            ids[k] = v
        elif isinstance(v, (list, tuple)):
            if v and len(v) <= 6 and all(isinstance(x, int) for x in v):
                ids[k] = "x".join(str(x) for x in v)  # a shape
        elif v is not None:
            values[k] = v
    for field, d in flat.items():
        t = {s: d[s] for s in _STATS if s in d}
        if "headline" in d and stat in _STATS:
            t.setdefault(stat, d["headline"])
        if "median" in t:
            times[field] = t
        elif len(d) == 1 and "headline" in d and field.endswith(("conversion", "build")):
            values[f"{field} ms"] = d["headline"]
        else:
            times[field] = {k: v for k, v in t.items() if k in _STATS}  # no median: shown as missing
    return {"ids": ids, "times": times, "values": values, "raw": record}


def _melt(recs: list[dict]) -> list[dict]:
    """Records holding one timing per provider (``{"config", "<provider>": {...}}``): one row each."""
    out = []
    for r in recs:
        keyed = {k: v for k, v in r["times"].items() if k.startswith("@")}
        plain = {k: v for k, v in r["times"].items() if not k.startswith("@")}
        if not keyed and "provider" not in r["ids"] and len(plain) >= 2 and not set(plain) & {"fwd", "full", "time"} \
                and not {"ours", "ref"} <= set(plain):
            keyed, plain = {f"@{k}": v for k, v in plain.items()}, {}
        if not keyed:
            out.append(r)
            continue
        for name, t in keyed.items():
            out.append({"ids": {**r["ids"], "provider": name[1:]}, "times": {**plain, "time": t},
                        "values": dict(r["values"]), "raw": r["raw"]})
    return out


# -- formatting ------------------------------------------------------------------------------------


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
        if mag < 1e-3:
            return f"{v:.1e}"
        return f"{v:.4g}" if mag < 100 else f"{v:.0f}"
    s = " ".join(str(v).split())
    return re.sub(r"([\\`*_|])", r"\\\1", s) if s else ""


def _ratio(r: float) -> str:
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def _spread_kind(recs: list[dict]) -> str | None:
    ts = [t for r in recs for t in r["times"].values() if "median" in t]
    if ts and all("min" in t and "max" in t for t in ts):
        return "min-max"
    for lo, hi in (("p20", "p80"), ("min", "max")):  # else the range most timings have; others show none
        if any(lo in t and hi in t for t in ts):
            return f"{lo}-{hi}"
    return None


def _time_cell(t: dict | None, spread: str | None) -> str:
    if not t or "median" not in t:
        return "\\-"
    lo, hi = spread.split("-") if spread else (None, None)
    rng = f" ({_fmt(float(t[lo]))}-{_fmt(float(t[hi]))})" if spread and lo in t and hi in t else ""
    return f"{_fmt(float(t['median']))}{rng}"


def _label(field: str) -> str:
    return _FIELD_LABELS.get(field, field.replace("_", " "))


def _is_ours(provider: str) -> bool:
    return provider.lower().startswith("graphvision")


# -- one table -------------------------------------------------------------------------------------


def _ratios(recs: list[dict], fields: list[str]) -> tuple[dict[int, list[tuple[str, list]]], str | None]:
    """Per record index: ``[(baseline, [ratio per field])]``, and the ratio column's header."""
    out: dict[int, list[tuple[str, list]]] = {}
    if recs and all("provider" not in r["ids"] for r in recs) and {"ours", "ref"} <= set(fields):
        for i, r in enumerate(recs):
            o, b = r["times"].get("ours", {}), r["times"].get("ref", {})
            if "median" in o and "median" in b and o["median"] > 0:
                out[i] = [(r["ids"].get("reference", "reference"), [b["median"] / o["median"]])]
        return out, "speed-up (reference ÷ graphvision)"
    if not any("provider" in r["ids"] for r in recs):
        return out, None
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(recs):
        key = tuple(sorted((k, v) for k, v in r["ids"].items() if k not in ("provider", "error")))
        groups.setdefault(key, []).append(i)
    tfields = [f for f in fields if f not in ("ours", "ref")]
    for idx in groups.values():
        named: list[str] = []
        for i in idx:
            sp = recs[i]["raw"].get("speedup")
            if isinstance(sp, dict):
                named += [k for k, v in sp.items() if isinstance(v, dict) and k not in named]
        provs = {recs[i]["ids"].get("provider", ""): i for i in idx}
        base = [b for b in named if b in provs] or [
            p for p in provs if not _is_ours(p) and "lower bound" not in p]
        for i in idx:
            if not _is_ours(recs[i]["ids"].get("provider", "")):
                continue
            cells = []
            for b in base:
                rs = []
                for f in tfields:
                    o, t = recs[i]["times"].get(f, {}), recs[provs[b]]["times"].get(f, {})
                    rs.append(t["median"] / o["median"] if "median" in o and "median" in t and o["median"] > 0
                              else None)
                if any(x is not None for x in rs):
                    cells.append((b, rs))
            if cells:
                out[i] = cells
    what = " / ".join(_label(f) for f in tfields)
    return out, f"speed-up ({what})" if out else None


def _table(recs: list[dict], meta: dict, spread: str | None) -> tuple[list[str], list[tuple[str, list]], bool]:
    """reST for one table, its plot bars, and whether a bandwidth cell needed the note."""
    all_ids = list(dict.fromkeys(k for r in recs for k in r["ids"] if k not in ("error", "op")))
    id_cols = [c for c in all_ids if len({r["ids"].get(c) for r in recs}) > 1 or c == "provider"] or all_ids[:1]
    same = [c for c in all_ids if c not in id_cols and all(c in r["ids"] for r in recs)]
    id_cols = [c for c in id_cols if c != "provider"] + [c for c in id_cols if c == "provider"]  # provider last
    first: dict[tuple, int] = {}
    for r in recs:  # rows of one config together, in the order the script wrote them
        first.setdefault(tuple(r["ids"].get(c, "") for c in id_cols if c != "provider"), len(first))
    recs = sorted(recs, key=lambda r: first[tuple(r["ids"].get(c, "") for c in id_cols if c != "provider")])
    fields = list(dict.fromkeys(f for r in recs for f in r["times"]))
    val_cols = list(dict.fromkeys(k for r in recs for k in r["values"] if _num(r["values"][k])))
    pairs = [(a, b, lab) for a, b, lab in _PAIRED if a in val_cols and b in val_cols]
    for a, b, lab in pairs:  # two memory columns as one "a / b" cell, to keep the table narrow
        val_cols[val_cols.index(a)] = (a, b, lab)
        val_cols.remove(b)
    val_cols.sort(key=lambda c: c == "max_rel_err")  # the error last
    ratios, ratio_header = _ratios(recs, fields)
    copy_gbs = meta.get("copy_gbs")
    bw = [None] * len(recs)
    for i, r in enumerate(recs):
        raw, t = r["raw"], r["times"].get("fwd", {})
        mb = raw.get("compulsory_mb")
        if not _num(mb) and _num(raw.get("fwd_gbs")) and _num(raw.get("fwd_ms")):
            mb = raw["fwd_gbs"] * raw["fwd_ms"]
        if _num(mb) and "median" in t and t["median"] > 0:
            gbs = mb / t["median"]
            bw[i] = (gbs, 100.0 * gbs / copy_gbs if _num(copy_gbs) and copy_gbs > 0 else None, mb)
    has_bw = any(bw)
    over = [b for b in bw if b and b[1] is not None and b[1] > 100]
    has_err = any(r["ids"].get("error") for r in recs)
    header = [_label(c) for c in id_cols] + [f"{_label(f)} ms" for f in fields]
    header += [ratio_header] if ratio_header else []
    header += ["GB/s forward (% of copy)"] if has_bw else []
    header += [c[2] if isinstance(c, tuple) else _VALUE_LABELS.get(c, c.replace("_", " ").replace(" mb", " MB"))
               for c in val_cols]
    header += ["note"] if has_err else []
    lines = []
    if same and len(recs) > 1:
        lines += ["Every row: " + ", ".join(f"{_label(c)} {_fmt(recs[0]['ids'][c])}" for c in same) + ".", ""]
    lines += [".. list-table::", "   :header-rows: 1", "   :class: gv-bench", ""]
    lines.append("   * - " + "\n     - ".join(_fmt(h) for h in header))
    bars: list[tuple[str, list]] = []
    plotted: set[tuple] = set()
    previous: tuple = ()
    for i, r in enumerate(recs):
        row_ids = [r["ids"].get(c, "") for c in id_cols]
        cells = []
        for j, (c, v) in enumerate(zip(id_cols, row_ids)):
            same = tuple(row_ids[: j + 1]) == previous[: j + 1] and c != "provider"
            cell = "" if same else _fmt(v)
            cells.append(f"**{cell}**" if c == "provider" and _is_ours(str(v)) and cell else cell)
        previous = tuple(row_ids)
        cells += [_time_cell(r["times"].get(f), spread) for f in fields]
        if ratio_header:
            cells.append("; ".join(
                " / ".join(_ratio(x) if x is not None else "\\-" for x in rs) + f" vs {_fmt(b)}"
                for b, rs in ratios.get(i, [])))
        if has_bw:
            b = bw[i]
            if b is None:
                cells.append("")
            else:
                pct = "" if b[1] is None else f" ({b[1]:.0f} %{' †' if b[1] > 100 else ''})"
                cells.append(f"{_fmt(b[0])}{pct}")
        cells += [(f"{_fmt(r['values'][c[0]])} / {_fmt(r['values'][c[1]])}"
                   if c[0] in r["values"] and c[1] in r["values"] else "")
                  if isinstance(c, tuple) else _fmt(r["values"].get(c)) for c in val_cols]
        if has_err:
            cells.append(_fmt(r["ids"].get("error")))
        lines.append("   * - " + "\n     - ".join(c if c or k < len(id_cols) else "\\-" for k, c in enumerate(cells)))
        # Plot the first graphvision provider of each group (the default backend).
        group = tuple(v for c, v in zip(id_cols, row_ids) if c != "provider")
        if i in ratios and group not in plotted:
            plotted.add(group)
            several = sum(1 for k in ratios if tuple(v for c, v in zip(id_cols, [recs[k]["ids"].get(c, "") for c in
                                                                             id_cols]) if c != "provider") == group) > 1
            who = f"{r['ids'].get('provider', '')} " if several else ""
            for b, rs in ratios[i]:
                name = " · ".join(str(v) for v in group if v and v != b)
                bars.append((f"{name}: {who}vs {b}" if name else f"{who}vs {b}", rs))
    lines.append("")
    if over:
        lo, hi = min(b[2] for b in over), max(b[2] for b in over)
        mb = _fmt(lo) if abs(hi - lo) < 0.05 else f"{_fmt(lo)}-{_fmt(hi)}"
        lines += [_BW_NOTE.format(mb=mb), ""]
    return lines, bars, bool(over)


# -- plot -----------------------------------------------------------------------------------------


def _plot(panels: list[tuple[str, list[tuple[str, list]], list[str]]], out_png: str, title: str) -> bool:
    """Horizontal bars of speed-ups on a linear axis, each labelled with its ratio; False if none.

    ``panels``: ``(title, [(bar label, [ratio per series])], series names)``.
    """
    panels = [(t, [(lab, rs) for lab, rs in bars if any(x is not None for x in rs)][:40], ser)
              for t, bars, ser in panels]
    panels = [(t, bars, ser) for t, bars, ser in panels if bars]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nser = max(len(rs) for _, bars, _ in panels for _, rs in bars)
    heights = [len(bars) * (0.22 + 0.16 * nser) + 0.7 for _, bars, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.5, sum(heights) + 0.8), dpi=100, squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (ptitle, bars, series) in zip(axes[:, 0], panels):
        top = max([1.2] + [x for _, rs in bars for x in rs if x is not None])  # own scale: the line at 1 shows
        h = 0.8 / nser
        for s in range(nser):
            ys = [i + (s - (nser - 1) / 2) * h for i in range(len(bars))]
            xs = [rs[s] if s < len(rs) and rs[s] is not None else 0.0 for _, rs in bars]
            label = series[s] if s < len(series) else "_nolegend_"
            ax.barh(ys, xs, height=h, color=f"C{s}", label=label)
            for y, x in zip(ys, xs):
                if x > 0:
                    ax.text(x + top * 0.01, y, _ratio(x), va="center", fontsize=7)
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_xscale("linear")
        ax.set_xlim(0, top * 1.15)
        ax.set_yticks(range(len(bars)))
        ax.set_yticklabels([lab for lab, _ in bars], fontsize=7)
        ax.invert_yaxis()
        if ptitle:
            ax.set_title(ptitle, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(series), frameon=False)
    axes[-1, 0].set_xlabel("speed-up = baseline median ÷ graphvision median, linear scale\n"
                           "(dashed line: equal speed; right of it graphvision is faster)", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(out_png), exist_ok=True)
    tmp = f"{out_png}.{os.getpid()}.tmp.png"
    fig.savefig(tmp, metadata={"Software": None})  # no timestamp, so an unchanged plot is byte-identical
    plt.close(fig)
    os.replace(tmp, out_png)
    return True


# -- one file --------------------------------------------------------------------------------------


def _md_title(md_path: str) -> str | None:
    try:
        with open(md_path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"#\s+(.+?)\s*#*\s*$", line)
                if m:
                    return m.group(1).replace("`", "").replace("*", "")
                if line.strip():
                    return None
    except OSError:
        return None
    return None


def _file_title(rel_stem: str, path: str) -> tuple[str, str]:
    """``(group, title)`` of a result file: the mapping, else its Markdown twin's heading."""
    base = os.path.splitext(path)[0]
    for key in (rel_stem, os.path.basename(base)):
        if key in RESULT_FILES:
            return RESULT_FILES[key]
    title = _md_title(base + ".md") or os.path.basename(base).replace("_", " ").strip().capitalize()
    if title.lower().replace(" ", "_") == os.path.basename(base).lower():
        title = f"Results: {title}"
    return ("gpu" if "cuda" in rel_stem or os.sep in rel_stem else "other"), title


def _provenance(meta: dict) -> list[str]:
    commit = str(meta.get("commit") or "")
    parts = []
    dev = meta.get("device_name") or meta.get("device")
    if dev:
        kind = f" ({_fmt(meta['device'])})" if meta.get("device") and meta.get("device") != dev else ""
        threads = f", {meta['torch_threads']} thread{'s' if meta['torch_threads'] != 1 else ''}" \
            if _num(meta.get("torch_threads")) else ""
        parts.append(f"machine {_fmt(dev)}{kind}{threads}")
    if commit:
        parts.append(f"commit ``{commit}``")
    if meta.get("time_utc"):
        parts.append(f"{_fmt(meta['time_utc'])} UTC")
    vers = [f"{n} {meta[k]}" for k, n in (("torch", "torch"), ("torch_geometric", "PyG"), ("triton", "Triton"))
            if meta.get(k)]
    if vers:
        parts.append(", ".join(vers))
    if _num(meta.get("load_average_1m_at_start")):
        parts.append(f"load average {meta['load_average_1m_at_start']} at start")
    lines = ["*Recorded:* " + "; ".join(parts) + ".", ""] if parts else []
    if "dirty" in commit:
        base = commit.split("+")[0]
        on = f"commit ``{base}``" if base else "a commit the script did not record"
        lines += [".. warning::", "",
                  f"   Recorded from uncommitted changes on top of {on}: the code measured is not exactly "
                  "any commit, so treat these numbers as indicative until the file is re-recorded from a "
                  "clean tree.", ""]
    elif not commit:
        lines += [".. warning::", "", "   This file records no commit.", ""]
    return lines


def _render_json(path: str, name: str, outdir: str, rel_prefix: str) -> list[str]:
    meta, lists = load_results(path)
    args = meta.get("args") if isinstance(meta.get("args"), dict) else {}
    stat = str(args.get("stat") or meta.get("stat") or "median")
    lines = _provenance(meta)
    head = len(lines)
    reps = args.get("reps") if _num(args.get("reps")) else None
    graphs = lists.pop("graphs", None)
    if graphs:
        cols = [c for c in ("name", "n", "e", "conversion_ms") if any(c in g for g in graphs)]
        if cols:
            titles = {"name": "graph", "n": "nodes", "e": "edges", "conversion_ms": "GraphStructure build ms"}
            lines += ["**Graphs** (``GraphStructure`` build: CSR, transpose and neighbour table, once per graph; "
                      "not in the op timings):", "", ".. list-table::", "   :header-rows: 1", "   :class: gv-bench", ""]
            lines.append("   * - " + "\n     - ".join(titles[c] for c in cols))
            for g in graphs:
                lines.append("   * - " + "\n     - ".join(_fmt(g.get(c)) or "\\-" for c in cols))
            lines.append("")
    if not lists:
        return lines + ["No records in this file.", ""]
    panels: list[tuple[str, list, list[str]]] = []
    for key, records in lists.items():
        recs = _melt([_normalise(r, stat) for r in records])
        if not recs:
            continue
        if not any("median" in t for r in recs for t in r["times"].values()):
            if any(r["times"] for r in recs):
                lines += [f"*This file records no median (its statistic: {_fmt(stat)}), so its times are not "
                          "shown; re-record it with the current script.*", ""]
                continue
        spread = _spread_kind(recs)
        what = {"min-max": "the range of the timed calls (min-max)",
                "p20-p80": "the 20th-80th percentile range (the script recorded no maximum)"}.get(spread or "")
        calls = f"{reps} timed calls" if reps else "the timed calls"
        stat_line = f"Times in ms: median of {calls}" + (f", with {what} in brackets." if what else ".")
        subtitle = _LIST_TITLES.get(key) or (None if key in _LIST_KEYS else key.replace("_", " ").capitalize())
        if subtitle:
            lines += [f"**{_fmt(subtitle)}**", ""]
        lines += [stat_line, ""]
        ops = list(dict.fromkeys(r["ids"].get("op") for r in recs))
        for op in ops:
            sub = [r for r in recs if r["ids"].get("op") == op]
            if op is not None:
                lines += [f"**{_fmt(op)}**", ""]
            tlines, bars, _ = _table(sub, meta, spread)
            lines += tlines
            if bars:
                fields = list(dict.fromkeys(f for r in sub for f in r["times"] if f not in ("ours", "ref")))
                panels.append((str(op) if op is not None else (subtitle or ""), bars, [_label(f) for f in fields]))
    png = f"bench_{re.sub(r'[^A-Za-z0-9_-]', '_', name)}.png"
    try:
        plotted = _plot(panels, os.path.join(outdir, png), "")
    except Exception:  # the tables are the result; a plot is a bonus
        plotted = False
    if plotted:
        img = [f".. image:: {rel_prefix}/{png}", "   :alt: speed-ups against each baseline, linear scale", ""]
        lines = lines[:head] + img + lines[head:]
    return lines


def _render_file(path: str, results_dir: str, outdir: str, rel_prefix: str, level: int, srcdir: str,
                 title: str) -> list[str]:
    rel = os.path.relpath(path, results_dir).replace(os.sep, "/")
    name = os.path.splitext(rel)[0].replace("/", "__")
    lines = [title, _SECTION[level] * max(len(title), 4), "", f"Source: ``benchmarks/results/{rel}``.", ""]
    if path.endswith(".md"):
        first = _md_title(path)
        return lines + [
            ".. note::", "",
            "   A Markdown result without its JSON data: shown as its script wrote it, so its statistic "
            "is the one it names, which may not be the median used on the rest of this page.", "",
            md_include(path, srcdir, start_line=1 if first else 0), ""]
    try:
        return lines + _render_json(path, name, outdir, rel_prefix)
    except Exception as exc:  # never fail the build on a result file
        return lines + [f"*Could not read this file* ({_fmt(type(exc).__name__)}).", ""]


def render_benchmarks(results_dir: str, outdir: str, rel_prefix: str, srcdir: str = DOCS_SRC) -> str:
    """reST for every result file in ``results_dir``, grouped; plots are written to ``outdir``.

    Files directly in ``results_dir`` are placed in their group (``RESULT_FILES``; unknown files go
    to "GPU runs" when their name says ``cuda``, else "Other results"). Each run folder
    (``results/<run>/``) is one subsection of "GPU runs", titled and opened by its ``README.md``.
    A Markdown file is shown only when it has no JSON twin; ``README.md`` files are not results.

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
    top: dict[str, list[tuple[str, str]]] = {g: [] for g in GROUPS}
    folders: dict[str, list[str]] = {}
    for path in shown:
        folder = os.path.relpath(os.path.dirname(path), results_dir)
        if folder != ".":
            folders.setdefault(folder, []).append(path)
            continue
        stem = os.path.splitext(os.path.relpath(path, results_dir))[0]
        group, title = _file_title(stem, path)
        top[group].append((path, title))
    order = list(RESULT_FILES)
    lines: list[str] = []
    used_titles: set[str] = set()
    for group, (gtitle, intro) in GROUPS.items():
        files = sorted(top[group], key=lambda pt: (order.index(os.path.splitext(os.path.basename(pt[0]))[0])
                                                   if os.path.splitext(os.path.basename(pt[0]))[0] in order
                                                   else len(order), pt[0]))
        if not files and not (group == "gpu" and folders):
            continue
        lines += [gtitle, _SECTION[0] * len(gtitle), "", intro, ""]
        for path, title in files:
            if title in used_titles:
                title = f"{title} ({os.path.splitext(os.path.basename(path))[0].replace('_', ' ')})"
            used_titles.add(title)
            lines += _render_file(path, results_dir, outdir, rel_prefix, 1, srcdir, title)
        if group != "gpu":
            continue
        for folder in sorted(folders, reverse=True):  # run folders named by date: newest first
            readme = os.path.join(results_dir, folder, "README.md")
            heading = _md_title(readme) if os.path.exists(readme) else None
            title = heading or f"Run of {folder.replace('_', ' ').replace(os.sep, ' / ')}"
            lines += [title, _SECTION[1] * len(title), ""]
            if os.path.exists(readme):
                lines += [md_include(readme, srcdir, start_line=1 if heading else 0), ""]
            for path in folders[folder]:
                stem = os.path.splitext(os.path.relpath(path, results_dir))[0]
                _, ftitle = _file_title(stem, path)
                if ftitle in used_titles:
                    ftitle = f"{ftitle} ({folder})"
                used_titles.add(ftitle)
                lines += _render_file(path, results_dir, outdir, rel_prefix, 2, srcdir, ftitle)
    return "\n".join(lines)
