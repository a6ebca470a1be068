"""Generate the API reference pages and the capability table from graphvision's ``__all__`` lists.

Nothing here is edited by hand when a name is added to the package: every public name of
:mod:`graphvision.functional`, :mod:`graphvision.nn`, :mod:`graphvision.ops`,
:mod:`graphvision.config`, :mod:`graphvision.testing` and :class:`graphvision.GraphStructure` is
put on one group page, chosen by the private file that exports it (``functional/_conv.py`` and
``nn/_conv.py`` go to "Graph convolutions", and so on). A name from a private file this script
does not know lands on the "Other" page, so it is documented anyway and the omission is visible.

The module is importable without Sphinx: ``tests/test_api_surface.py`` uses :func:`collect` and
:func:`render_group` to check that every public name is documented.
"""

from __future__ import annotations

import importlib
import inspect
import os
import types
from dataclasses import dataclass, field

__all__ = [
    "GROUPS",
    "CAPABILITY_KEYS",
    "Entry",
    "Group",
    "collect",
    "render_group",
    "render_toc",
    "render_capabilities",
    "capability_rows",
    "write_all",
    "write_if_changed",
]


@dataclass
class Group:
    """One API page."""

    slug: str
    title: str
    intro: str
    entries: list[Entry] = field(default_factory=list)
    #: Names exported again under another path (documented on their canonical page).
    aliases: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Entry:
    """One public object, documented once under its canonical public path."""

    path: str  # e.g. "graphvision.nn.GCNConv"
    namespace: str  # e.g. "graphvision.nn"
    name: str
    obj: object
    kind: str  # "module-class", "class", "function", "data", "module"
    private_module: str | None = None  # e.g. "graphvision.nn._conv"

    @property
    def doc(self) -> str:
        """The object's own documentation (the ``#:`` comment for constants)."""
        if self.kind == "data":
            return data_doc(self)
        return inspect.getdoc(self.obj) or ""


#: (slug, title, intro). The order is the order of the API index.
GROUPS: list[tuple[str, str, str]] = [
    (
        "converters",
        "Image-to-graph converters",
        "Turn images into graphs (pixel grids, patches, kNN and radius graphs, superpixels) and node "
        "values back into heatmaps. Node ``b*H*W + y*W + x`` is pixel ``(y, x)`` of image ``b``; "
        "``edge_index`` is ``(2, E)`` with messages flowing from ``edge_index[0]`` to ``edge_index[1]``, "
        "as in PyG. See :doc:`/tutorials/image_to_graph`.",
    ),
    (
        "attention",
        "Attention and mutual-information adjacency",
        "Cross-channel attention on feature maps and the mutual-information adjacency that connects "
        "nodes whose feature vectors share information. See :doc:`/tutorials/mutual_information`.",
    ),
    (
        "conv",
        "Graph convolutions",
        "Message-passing layers. Every convolution takes ``(N, F)`` node features with an "
        "``edge_index`` (or a :class:`~graphvision.GraphStructure`) and runs on the fused ops of "
        ":mod:`graphvision.ops`. Which options each layer supports is in :doc:`/capabilities`.",
    ),
    (
        "pool",
        "Pooling and readout",
        "Graph-level readouts and node selection. Readouts take the number of graphs as an argument, "
        "so they never synchronise with the host.",
    ),
    (
        "ops",
        "Fused ops",
        "The differentiable kernels every layer runs on, behind one dispatch point. Each op documents "
        "its exact PyTorch equivalent. Which backend runs when, and which paths are deterministic, is "
        "explained in :doc:`/tutorials/kernels`.",
    ),
    (
        "structure",
        "Graph structure",
        "A graph with its target-sorted CSR and neighbour table cached, so layers do not re-sort edges "
        "on every call, and the type aliases used in signatures.",
    ),
    (
        "utils",
        "Graph utilities",
        "PyG's graph utilities under PyG's names, with PyG's outputs: dense batches and adjacency, "
        "self-loops, coalescing, subgraphs, degrees. Each takes an ``edge_index`` or a "
        ":class:`~graphvision.GraphStructure`.",
    ),
    (
        "config",
        "Configuration",
        "Backend selection and input checks, process-wide, per scope, or by environment variable.",
    ),
    (
        "testing",
        "Testing helpers",
        "Helpers for testing code built on graphvision: tolerance-aware comparison and hypothesis "
        "strategies.",
    ),
    (
        "other",
        "Other",
        "Public names exported by a private file that the documentation generator does not map to a "
        "group yet (add it to ``PRIVATE_GROUPS`` in ``docs/_ext/gv_apigen.py``).",
    ),
]

#: Private file basename -> group slug, for graphvision.functional and graphvision.nn.
PRIVATE_GROUPS: dict[str, str] = {
    "_converters": "converters",
    "_graph_grid": "converters",
    "_graph_knn": "converters",
    "_graph_superpixel": "converters",
    "_channel_attention": "attention",
    "_mutual_information": "attention",
    "_conv": "conv",
    "_conv_pyg": "conv",
    "_graph_input": "conv",
    "_propagate": "conv",
    "_vig": "conv",
    "_message_passing": "conv",
    "_pool": "pool",
}

#: Capability columns (key in a layer's ``_capabilities`` dict, column title).
CAPABILITY_KEYS: list[tuple[str, str]] = [
    ("batched", "Batched"),
    ("per_sample_graph", "Per-sample graphs"),
    ("edge_weight", "Edge weights"),
    ("fused_kernel", "Fused op"),
    ("compile_safe", "Compile"),
    ("deterministic", "Determ\u00adinistic"),
]

#: How booleans are shown in the table.
YES, NO = "\u2713", "\u2717"


def _is_alias(obj: object) -> bool:
    """A typing construct (``Union[...]``, ``X | None``, ``list[int]``) rather than a class."""
    import typing

    return typing.get_origin(obj) is not None or isinstance(obj, types.UnionType)


def _kind(obj: object, namespace: str = "") -> str:
    if namespace == "graphvision.typing" or _is_alias(obj):
        return "data"
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        try:
            import torch

            if issubclass(obj, torch.nn.Module):
                return "module-class"
        except ImportError:  # pragma: no cover
            pass
        return "class"
    if callable(obj):
        return "function"
    return "data"


def _private_owner(package: types.ModuleType, name: str) -> str | None:
    """The private submodule of ``package`` whose ``__all__`` lists ``name``."""
    for attr, sub in sorted(vars(package).items()):
        if (
            isinstance(sub, types.ModuleType)
            and attr.startswith("_")
            and sub.__name__.startswith(package.__name__ + ".")
            and name in getattr(sub, "__all__", ())
        ):
            return sub.__name__
    return None


def _group_for(namespace: str, private: str | None, obj: object) -> str:
    fixed = {
        "graphvision.ops": "ops",
        "graphvision.config": "config",
        "graphvision.utils": "utils",
        "graphvision.testing": "testing",
        "graphvision.testing.strategies": "testing",
        "graphvision.structure": "structure",
        "graphvision.typing": "structure",
        "graphvision": "structure",
    }
    if namespace in fixed:
        return fixed[namespace]
    candidates = [private, getattr(obj, "__module__", None)]
    for mod in candidates:
        if mod:
            base = mod.rsplit(".", 1)[-1]
            if base in PRIVATE_GROUPS:
                return PRIVATE_GROUPS[base]
    return "other"


def _public_names(namespace: str) -> list[str]:
    mod = importlib.import_module(namespace)
    if namespace == "graphvision":
        # Only the structure re-exported at the top level; subpackages have their own pages.
        structure = importlib.import_module("graphvision.structure")
        return [n for n in getattr(structure, "__all__", []) if hasattr(mod, n)]
    return list(getattr(mod, "__all__", []))


#: Namespaces documented, in the order that decides an object's canonical path.
NAMESPACES: list[str] = [
    "graphvision",
    "graphvision.typing",
    "graphvision.functional",
    "graphvision.nn",
    "graphvision.ops",
    "graphvision.config",
    "graphvision.utils",
    "graphvision.testing",
    "graphvision.testing.strategies",  # needs hypothesis; skipped when it is not installed
]

#: Namespaces whose import may fail for a missing optional dependency.
OPTIONAL_NAMESPACES: set[str] = {"graphvision.testing.strategies"}


def collect() -> dict[str, Group]:
    """Group every public object by page; each object is documented once.

    Returns:
        Group slug -> :class:`Group`, in :data:`GROUPS` order.
    """
    groups = {slug: Group(slug, title, intro) for slug, title, intro in GROUPS}
    seen: dict[int, str] = {}
    for namespace in NAMESPACES:
        try:
            package = importlib.import_module(namespace)
        except ImportError:
            if namespace in OPTIONAL_NAMESPACES:
                continue
            raise
        for name in _public_names(namespace):
            obj = getattr(package, name)
            private = _private_owner(package, name)
            slug = _group_for(namespace, private, obj)
            path = f"{namespace}.{name}"
            kind = _kind(obj, namespace)
            # Plain data (ints, strings, tuples) can be equal objects under several names; only
            # classes, functions and modules are de-duplicated by identity.
            if kind != "data" and id(obj) in seen:
                groups[slug].aliases.append((path, seen[id(obj)]))
                continue
            if kind != "data":
                seen[id(obj)] = path
            groups[slug].entries.append(Entry(path, namespace, name, obj, kind, private))
    return groups


def _module_members(cls: type) -> list[str]:
    """``forward`` and ``reset_parameters`` when the class (not torch.nn.Module) defines them."""
    import torch

    members = []
    for meth in ("forward", "reset_parameters"):
        for klass in cls.__mro__:
            if klass is torch.nn.Module or klass is object:
                break
            if meth in vars(klass):
                members.append(meth)
                break
    # a base class lists the methods subclasses override (MessagePassing: propagate, message, ...)
    members += [m for m in getattr(cls, "_doc_members", ()) if m not in members]
    return members


def _directive(entry: Entry) -> str:
    if entry.kind == "module-class":
        members = _module_members(entry.obj)  # type: ignore[arg-type]
        opts = f"   :members: {', '.join(members)}\n" if members else ""
        return f".. autoclass:: {entry.path}\n{opts}"
    if entry.kind == "class":
        return f".. autoclass:: {entry.path}\n   :members:\n"
    if entry.kind == "function":
        return f".. autofunction:: {entry.path}\n"
    if entry.kind == "module":
        return f".. automodule:: {entry.obj.__name__}\n   :members:\n"  # type: ignore[attr-defined]
    doc = data_doc(entry)
    body = "\n".join(("   " + line) if line.strip() else "" for line in doc.splitlines())
    return f".. py:data:: {entry.path}\n\n{body}\n"


def data_doc(entry: Entry) -> str:
    """The ``#:`` comment (or docstring after the assignment) of a public constant or alias.

    ``autodata`` on the public path would show the docstring of the value's type (``dict``) because
    the comment lives in the private file, so the comment is read from there with Sphinx's
    source analyzer.
    """
    modules = [entry.namespace]
    if entry.private_module:
        modules.insert(0, entry.private_module)
    package = importlib.import_module(entry.namespace)
    modules += [
        sub.__name__
        for sub in vars(package).values()
        if isinstance(sub, types.ModuleType) and sub.__name__.startswith(entry.namespace + ".")
    ]
    try:
        from sphinx.pycode import ModuleAnalyzer
    except ImportError:  # pragma: no cover - sphinx is a docs dependency
        return ""
    for modname in modules:
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:
            continue
        if ("", entry.name) in docs:
            return "\n".join(docs[("", entry.name)]).strip()
    return ""


_SECTION_TITLES = {
    "module-class": "Modules",
    "class": "Classes",
    "function": "Functions",
    "data": "Constants and aliases",
    "module": "Submodules",
}


#: Group pages that open with a package's own docstring (and are that package's link target).
GROUP_MODULES: dict[str, tuple[str, ...]] = {
    "ops": ("graphvision.ops",),
    "config": ("graphvision.config",),
    "utils": ("graphvision.utils",),
    "testing": ("graphvision.testing", "graphvision.testing.strategies"),
}


def render_group(group: Group) -> str:
    """reST source of one API page."""
    lines = [group.title, "=" * len(group.title), "", group.intro, ""]
    for module in GROUP_MODULES.get(group.slug, ()):
        try:
            importlib.import_module(module)
        except ImportError:  # an optional dependency (hypothesis for the strategies) is missing
            continue
        # The package docstring, then back to no current module: the entries use full paths.
        lines += [f".. automodule:: {module}", "", ".. currentmodule:: None", ""]
    if not group.entries:
        lines += ["Nothing is exported in this group yet.", ""]
    else:
        summarised = [e for kind in ("module-class", "class", "function") for e in group.entries if e.kind == kind]
        if summarised:
            lines += [".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   ~{e.path}" for e in summarised]  # "~": show the short name, link the full one
            lines += [""]
        for kind in ("module-class", "class", "function", "data", "module"):
            entries = [e for e in group.entries if e.kind == kind]
            if not entries:
                continue
            title = _SECTION_TITLES[kind]
            namespaces = sorted({e.namespace for e in entries})
            if kind in ("module-class", "function") and len(namespaces) == 1:
                title = f"{title} (``{namespaces[0]}``)"
            lines += [title, "-" * len(title), ""]
            for e in entries:
                lines += [_directive(e)]
    if group.aliases:
        lines += ["Also exported as", "-" * len("Also exported as"), ""]
        for alias, target in group.aliases:
            lines += [f"- ``{alias}``: the same object as :obj:`{target}`"]
        lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def render_toc(groups: dict[str, Group]) -> str:
    """A toctree of the non-empty group pages (included by ``docs/api/index.rst``)."""
    lines = [".. toctree::", "   :maxdepth: 1", ""]
    for slug, group in groups.items():
        if slug == "other" and not group.entries and not group.aliases:
            continue
        lines.append(f"   generated/{slug}")
    return "\n".join(lines) + "\n"


def capability_rows() -> tuple[list[str], list[tuple[str, list[str]]], list[str]]:
    """The capability table from each ``graphvision.nn`` layer's ``_capabilities`` dict.

    Returns:
        ``(header, rows, missing)``: column titles; ``(class path, cells)`` per layer; the layers
        that declare no ``_capabilities`` (their cells are ``?``).
    """
    import torch

    nn = importlib.import_module("graphvision.nn")
    keys = list(CAPABILITY_KEYS)
    known = {k for k, _ in keys}
    rows: list[tuple[str, dict]] = []
    missing = []
    for name in nn.__all__:
        obj = getattr(nn, name)
        if not (inspect.isclass(obj) and issubclass(obj, torch.nn.Module)):
            continue
        caps = getattr(obj, "_capabilities", None)
        if not isinstance(caps, dict):
            missing.append(f"graphvision.nn.{name}")
            caps = {}
        for k in caps:
            if k not in known:
                known.add(k)
                keys.append((k, k.replace("_", " ").capitalize()))
        rows.append((f"graphvision.nn.{name}", caps))

    ops = importlib.import_module("graphvision.ops")

    def cell(value: object) -> str:
        if value is None:
            return "?"
        if value is True:
            return YES
        if value is False:
            return NO
        text = " ".join(str(value).split())
        if text in getattr(ops, "__all__", ()):
            return f":func:`~graphvision.ops.{text}`"  # the fused op the layer runs on
        if text.isidentifier():
            return f"``{text}``"
        return text.replace("|", "/").replace("*", "\\*").replace("`", "'")

    header = ["Layer"] + [title for _, title in keys]
    # Layers that declare their capabilities first (in __all__ order), then the undeclared ones.
    rows = [r for r in rows if r[0] not in missing] + [r for r in rows if r[0] in missing]
    out = [(path, [cell(caps.get(k)) for k, _ in keys]) for path, caps in rows]
    return header, out, missing


def render_capabilities() -> str:
    """reST of the capability table (included by ``docs/capabilities.rst``)."""
    header, rows, missing = capability_rows()
    if not rows:
        return "No layer is exported by :mod:`graphvision.nn` yet.\n"
    lines = [".. list-table::", "   :header-rows: 1", "   :class: gv-capabilities", ""]
    lines.append("   * - " + "\n     - ".join(header))
    for path, cells in rows:
        lines.append("   * - " + "\n     - ".join([f":class:`~{path}`", *cells]))
    lines.append("")
    if missing:
        lines += [
            "Layers that declare no ``_capabilities`` (shown as ``?``): "
            + ", ".join(f":class:`~{p}`" for p in missing)
            + ".",
            "",
        ]
    return "\n".join(lines)


def write_if_changed(path: str, text: str | bytes) -> bool:
    """Write atomically, and only when the content changed (keeps incremental builds incremental)."""
    data = text.encode() if isinstance(text, str) else text
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def write_all(outdir: str) -> dict[str, Group]:
    """Write ``<slug>.rst``, ``toc.rst`` and ``capabilities.rst`` into ``outdir``."""
    groups = collect()
    for slug, group in groups.items():
        path = os.path.join(outdir, f"{slug}.rst")
        if slug == "other" and not group.entries and not group.aliases:
            try:
                os.remove(path)  # not in the toctree: a stale page would warn
            except FileNotFoundError:
                pass
            continue
        write_if_changed(path, render_group(group))
    write_if_changed(os.path.join(outdir, "toc.inc"), render_toc(groups))
    write_if_changed(os.path.join(outdir, "capabilities.inc"), render_capabilities())
    return groups
