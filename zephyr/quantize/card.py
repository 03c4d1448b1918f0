"""The model card's "Quantized versions" section and the perplexity table written beside each quantized file.

Rows are kept in `quantization.json` next to the README, one per version (format + type), so quantizing
again replaces that version's row and the section is re-rendered whole; the rest of the card is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

HEADING = "## Quantized versions"
ROWS_FILE = "quantization.json"
TABLE_FILE = "quantization.md"
COLUMNS = ("version", "file", "size_mb", "perplexity", "reference_perplexity", "delta_percent", "engine")
TITLES = ("Version", "File", "Size (MB)", "Perplexity", "Unquantized perplexity", "Δ perplexity", "Checked with")


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(TITLES) + " |", "|" + "---|" * len(TITLES)]
    for row in rows:
        cells = [f"`{row['file']}`" if c == "file" else _cell(c, row.get(c)) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "–"
    if column == "delta_percent":
        return f"{value:+.2f}%"
    if isinstance(value, float):
        return f"{value:.3f}" if column != "size_mb" else f"{value:.1f}"
    return str(value)


def merge_rows(folder: Path, new: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add or replace rows (by version) in folder/quantization.json; return all rows, sorted by version."""
    path = folder / ROWS_FILE
    rows = {r["version"]: r for r in (json.loads(path.read_text()) if path.exists() else [])}
    rows.update({r["version"]: dict(r) for r in new})
    ordered = sorted(rows.values(), key=lambda r: r["version"])
    path.write_text(json.dumps(ordered, indent=1) + "\n")
    return ordered


def section(rows: Sequence[dict[str, Any]], eval_text: str) -> str:
    return "\n".join([
        HEADING, "",
        f"Each version was reloaded and asked to generate after writing; perplexity is measured on {eval_text} "
        "with identical token windows for the quantized file and the unquantized checkpoint (lower is better).",
        "", table(rows), ""])


def update_card(folder: str | Path, new_rows: Sequence[dict[str, Any]], eval_text: str = "held-out text") -> Path:
    """Write quantization.json / quantization.md and add or replace the README's "Quantized versions" section."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = merge_rows(folder, new_rows)
    body = section(rows, eval_text)
    (folder / TABLE_FILE).write_text(body)
    readme = folder / "README.md"
    text = readme.read_text() if readme.exists() else ""
    readme.write_text(replace_section(text, body))
    return readme


def replace_section(card: str, body: str) -> str:
    """`card` with its "## Quantized versions" section (up to the next level-2 heading) replaced or appended."""
    lines = card.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == HEADING), None)
    if start is None:
        return (card.rstrip() + "\n\n" if card.strip() else "") + body
    end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
    rest = "\n".join(lines[end:])
    before = "\n".join(lines[:start]).rstrip()
    return (before + "\n\n" if before else "") + body + ("\n" + rest + ("\n" if card.endswith("\n") else "")
                                                        if rest else "")
