"""A small Markdown -> reStructuredText converter for the result files written by scripts.

``docs/rmcg_results.md`` (written by ``examples/rmcg/compare.py``) and
``benchmarks/results/*.md`` are Markdown, and ``myst-parser`` is not a docs dependency. The
files are simple: headings, paragraphs, pipe tables, bullet and numbered lists, fenced code,
inline code, bold, italics and links. Anything else is kept as text, escaped so that it can
never produce a reST warning. :func:`md_to_rst` never raises on odd input.
"""

from __future__ import annotations

import re

__all__ = ["md_to_rst", "inline", "block"]

_HEADING_CHARS = "-~^\"'"
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_body>.+?)(?P=code)"
    r"|!\[(?P<img_alt>[^\]]*)\]\((?P<img_url>[^)\s]+)\)"
    r"|\[(?P<link_text>[^\]\[*_`|<>\\]+)\]\((?P<link_url>[^)\s`<>]+)\)"
    r"|\*\*(?P<bold>[^*]+?)\*\*"
    r"|__(?P<bold2>[^_]+?)__"
    r"|(?<![\w*])\*(?P<ital>[^*\s][^*]*?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<ital2>[^_\s][^_]*?)_(?![\w_])"
    r"|<br\s*/?>"
    r"|(?P<url>https?://[^\s<>)|`*\[\]\\]+)"
)


def _escape(text: str) -> str:
    text = re.sub(r"([\\`*_|\[\]<>])", r"\\\1", text)
    return text.replace("::", ":\\:")  # a trailing "::" would announce a literal block


def inline(text: str) -> str:
    """Convert Markdown inline markup of one line to reST."""
    out = []
    pos = 0
    for m in _INLINE.finditer(text):
        before = text[pos : m.start()]
        out.append(_escape(before))
        prev = "".join(out)[-1:]
        if prev and not prev.isspace():
            out.append("\\ ")  # inline markup must follow whitespace (an escaped space is invisible)
        pos = m.end()
        if m.group("code"):
            body = m.group("code_body").strip()
            out.append(f"``{body}``" if body and "`" not in body and "\\" not in body[-1:] else _escape(m.group(0)))
        elif m.group("img_url"):
            out.append(_escape(m.group("img_alt")))
        elif m.group("link_url"):
            label = m.group("link_text").replace("`", "").replace("<", "").replace(">", "")
            out.append(f"`{label} <{m.group('link_url')}>`__")
        elif m.group("bold") or m.group("bold2"):
            body = _escape((m.group("bold") or m.group("bold2")).strip())
            out.append(f"**{body}**" if body and not body.endswith("\\") else _escape(m.group(0)))
        elif m.group("ital") or m.group("ital2"):
            body = _escape((m.group("ital") or m.group("ital2")).strip())
            out.append(f"*{body}*" if body and not body.endswith("\\") else _escape(m.group(0)))
        elif m.group("url"):
            out.append(f"`{m.group('url')} <{m.group('url')}>`__")
        else:  # <br>
            out.append(" ")
        out.append("\\ " if pos < len(text) and not text[pos].isspace() else "")
    out.append(_escape(text[pos:]))
    result = "".join(out)
    return result


_BLOCK_START = re.compile(r"^([-+#>:.=~^'\"(!/%,;?@$&{}]|([0-9]+|[A-Za-z]|[ivxlcdmIVXLCDM]+)[.)](\s|$))")


def block(text: str) -> str:
    """:func:`inline`, plus an escape when the text would otherwise start a reST block construct.

    A paragraph, list item or table cell starting with ``-``, ``#.``, ``1.``, ``a)``, ``>``,
    ``..``, ``:`` or ``=`` would be read as a list, comment, field or title in reST.
    """
    out = inline(text)
    if re.fullmatch(r"[^\w\s]+", out):
        return "\\ " + out  # only punctuation: could read as a transition or a title underline
    if _BLOCK_START.match(out):
        out = "\\" + out
    return out


def _lexer(lang: str) -> str:
    """``lang`` when Pygments knows it (an unknown one would warn), else ``text``."""
    if not lang:
        return "text"
    try:
        from pygments.lexers import get_lexer_by_name

        get_lexer_by_name(lang)
        return lang
    except Exception:
        return "text"


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
            text = block(c) if c else ""
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
            marker, lang = fence.group(1), _lexer(fence.group(2))
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append(lines[i])
                i += 1
            i += 1
            blank()
            if any(b.strip() for b in body):
                out += [f".. code:: {lang}", ""] + [("   " + b) if b.strip() else "" for b in body] + [""]
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            level = max(len(heading.group(1)) - top_level, 0)
            title = block(heading.group(2)) or "Section"
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
            if rows:
                out += _table(rows, header and len(rows) > 1)
            continue
        item = re.match(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$", line)
        if item:
            blank()
            # Items are collected as raw text first (continuation lines joined), so inline markup
            # that spans a line break converts as one span. Nested lists are flattened: the result
            # files use one level, and flat is always valid.
            items: list[tuple[str, str]] = []
            while i < len(lines):
                m = re.match(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$", lines[i])
                if not m:
                    if lines[i].strip() and lines[i].startswith("  ") and items:
                        items[-1] = (items[-1][0], items[-1][1] + " " + lines[i].strip())  # continuation
                        i += 1
                        continue
                    break
                items.append(("-" if m.group(2) in "-*+" else "#.", m.group(3).strip()))
                i += 1
            for bullet, text in items:
                if not text:
                    continue  # an empty item
                if out and out[-1] and not out[-1].startswith(bullet):
                    out.append("")  # a list of another kind starts: separate it
                out.append(f"{bullet} {block(text)}")
            out.append("")
            continue
        if stripped.startswith(">"):
            blank()
            out += ["..", ""]  # an empty comment keeps the quote from joining a preceding list or table
            while i < len(lines) and lines[i].strip().startswith(">"):
                out.append("   " + block(lines[i].strip().lstrip(">").strip()))
                i += 1
            out.append("")
            continue
        if re.fullmatch(r"(-{3,}|\*{3,}|_{3,})", stripped):
            i += 1
            continue
        para = []
        while (
            i < len(lines)
            and lines[i].strip()
            and not re.match(r"^(#{1,6}\s|```|~~~|\s*[-*+]\s|\s*\d+[.)]\s|\s*\||\s*>)", lines[i])
            and not re.fullmatch(r"\s*([-=*_])\1{2,}\s*", lines[i])
        ):
            para.append(lines[i].strip())
            i += 1
        if not para:  # a line no rule took: keep it as text
            if not re.fullmatch(r"\s*([-=*_])\1{2,}\s*", line):
                para.append(stripped)
            i += 1
        blank()
        if para:
            # One reST line per paragraph: inline markup may span the Markdown line breaks.
            out += [block(" ".join(para)), ""]
    return "\n".join(out).strip() + "\n"
