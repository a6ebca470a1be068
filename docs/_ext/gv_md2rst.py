"""A small Markdown -> reStructuredText converter for the result files written by scripts.

``docs/rmcg_results.md`` (written by ``examples/rmcg/compare.py``) and
``benchmarks/results/*.md`` are Markdown, and ``myst-parser`` is not a docs dependency. The
files are simple: headings, paragraphs, pipe tables, bullet and numbered lists, fenced code,
inline code, bold, italics and links. Anything else is kept as text, escaped so that it can
never produce a reST warning. :func:`md_to_rst` never raises on odd input.
"""

from __future__ import annotations

import re

__all__ = ["md_to_rst", "inline"]

_HEADING_CHARS = "-~^\"'"
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_body>.+?)(?P=code)"
    r"|!\[(?P<img_alt>[^\]]*)\]\((?P<img_url>[^)\s]+)\)"
    r"|\[(?P<link_text>[^\]]+)\]\((?P<link_url>[^)\s]+)\)"
    r"|\*\*(?P<bold>[^*]+?)\*\*"
    r"|__(?P<bold2>[^_]+?)__"
    r"|(?<![\w*])\*(?P<ital>[^*\s][^*]*?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<ital2>[^_\s][^_]*?)_(?![\w_])"
    r"|<br\s*/?>"
    r"|(?P<url>https?://[^\s<>)|]+)"
)


def _escape(text: str) -> str:
    return re.sub(r"([\\`*_|\[\]<>])", r"\\\1", text)


def inline(text: str) -> str:
    """Convert Markdown inline markup of one line to reST."""
    out = []
    pos = 0
    for m in _INLINE.finditer(text):
        before = text[pos : m.start()]
        out.append(_escape(before))
        if (before or (out and out[-2:-1])) and "".join(out)[-1:].isalnum():
            out.append("\\ ")  # inline markup must not follow a letter directly
        pos = m.end()
        if m.group("code"):
            body = m.group("code_body").strip()
            out.append(f"``{body}``" if "``" not in body else _escape(body))
        elif m.group("img_url"):
            out.append(_escape(m.group("img_alt")))
        elif m.group("link_url"):
            label = m.group("link_text").replace("`", "").replace("<", "").replace(">", "")
            out.append(f"`{label} <{m.group('link_url')}>`__")
        elif m.group("bold") or m.group("bold2"):
            out.append(f"**{_escape(m.group('bold') or m.group('bold2')).strip()}**")
        elif m.group("ital") or m.group("ital2"):
            out.append(f"*{_escape(m.group('ital') or m.group('ital2')).strip()}*")
        elif m.group("url"):
            out.append(f"`{m.group('url')} <{m.group('url')}>`__")
        else:  # <br>
            out.append(" ")
        out.append("\\ " if pos < len(text) and (text[pos].isalnum()) else "")
    out.append(_escape(text[pos:]))
    result = "".join(out)
    return result


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [c.strip().replace("\\|", "|") for c in cells]


def _is_separator(line: str) -> bool:
    return bool(re.fullmatch(r"\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*", line))


def _table(rows: list[list[str]], header: bool) -> list[str]:
    width = max(len(r) for r in rows)
    lines = [".. list-table::"]
    if header:
        lines.append("   :header-rows: 1")
    lines.append("")
    for row in rows:
        row = row + [""] * (width - len(row))
        for i, c in enumerate(row):
            text = inline(c) if c else ""
            lines.append(("   * - " if i == 0 else "     - ") + text)
    lines.append("")
    return lines


def md_to_rst(md: str, *, top_level: int = 1) -> str:
    """Convert Markdown to reST.

    Args:
        md: Markdown source.
        top_level: Markdown heading level that maps to the first reST section character
            (``-``); lower levels map to ``~``, ``^``, ... Headings above it map to ``-`` too.

    Returns:
        reST source, to be included below a page title.
    """
    lines = md.replace("\r\n", "\n").replace("\t", "    ").split("\n")
    out: list[str] = []
    i = 0

    def blank() -> None:
        if out and out[-1] != "":
            out.append("")

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            blank()
            i += 1
            continue
        fence = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence:
            marker, lang = fence.group(1), fence.group(2) or "text"
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1
            blank()
            out += [f".. code-block:: {lang}", ""] + [("   " + b) if b.strip() else "" for b in body] + [""]
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            level = max(len(heading.group(1)) - top_level, 0)
            title = inline(heading.group(2)) or "Section"
            char = _HEADING_CHARS[min(level, len(_HEADING_CHARS) - 1)]
            blank()
            out += [title, char * max(len(title), 4), ""]
            i += 1
            continue
        if stripped.startswith("|") or (
            "|" in stripped and i + 1 < len(lines) and _is_separator(lines[i + 1])
        ):
            rows = []
            header = i + 1 < len(lines) and _is_separator(lines[i + 1])
            while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                if not _is_separator(lines[i]):
                    rows.append(_split_row(lines[i]))
                i += 1
            blank()
            out += _table(rows, header and len(rows) > 1)
            continue
        item = re.match(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$", line)
        if item:
            blank()
            while i < len(lines):
                m = re.match(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$", lines[i])
                if not m:
                    if lines[i].strip() and lines[i].startswith("  ") and out:
                        out[-1] += " " + inline(lines[i].strip())  # continuation line
                        i += 1
                        continue
                    break
                depth = len(m.group(1)) // 2
                bullet = "-" if m.group(2) in "-*+" else "#."
                if out and out[-1] and not depth and not out[-1].startswith(bullet) and not out[-1].startswith(" "):
                    out.append("")  # a list of another kind starts: separate it
                if depth and out and out[-1] != "" and not out[-1].startswith("  " * depth):
                    out.append("")
                out.append("  " * depth * (2 if bullet == "#." else 1) + f"{bullet} {inline(m.group(3))}")
                i += 1
            out.append("")
            continue
        if stripped.startswith(">"):
            blank()
            while i < len(lines) and lines[i].strip().startswith(">"):
                out.append("   " + inline(lines[i].strip().lstrip(">").strip()))
                i += 1
            out.append("")
            continue
        if re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", stripped):
            i += 1
            continue
        para = []
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6}\s|```|~~~|\s*[-*+]\s|\s*\d+[.)]\s|\s*\|)", lines[i]):
            para.append(inline(lines[i].strip()))
            i += 1
        if not para:  # a line no rule took: keep it as text
            para.append(inline(stripped))
            i += 1
        blank()
        out += para + [""]
    return "\n".join(out).strip() + "\n"
