"""The model card's "Quantized versions" section: added once, replaced in place, rest of the card untouched."""

from __future__ import annotations

import json

from zephyr.quantize.card import HEADING, replace_section, table, update_card


def row(version, ppl, ref=10.0):
    return {"version": version, "file": f"m-{version}.gguf", "size_mb": 12.34, "perplexity": ppl,
            "reference_perplexity": ref, "delta_percent": 100 * (ppl / ref - 1), "engine": "llama.cpp 0.3"}


def test_table_formats_delta_and_sizes():
    text = table([row("gguf-q8_0", 10.05)])
    assert "| gguf-q8_0 | `m-gguf-q8_0.gguf` | 12.3 | 10.050 | 10.000 | +0.50% | llama.cpp 0.3 |" in text


def test_section_appended_then_replaced(tmp_path):
    card = "# my-model\n\nIntro.\n\n## Training results\n\n| a |\n"
    (tmp_path / "README.md").write_text(card)
    update_card(tmp_path, [row("gguf-q8_0", 10.1)], "held-out")
    first = (tmp_path / "README.md").read_text()
    assert first.startswith(card.rstrip()) and first.count(HEADING) == 1 and "+1.00%" in first
    update_card(tmp_path, [row("gguf-q8_0", 10.2), row("awq-w4-g128", 10.9)], "held-out")
    second = (tmp_path / "README.md").read_text()
    assert second.count(HEADING) == 1
    assert "+1.00%" not in second and "+2.00%" in second and "+9.00%" in second
    assert second.startswith(card.rstrip())
    rows = json.loads((tmp_path / "quantization.json").read_text())
    assert [r["version"] for r in rows] == ["awq-w4-g128", "gguf-q8_0"]
    assert (tmp_path / "quantization.md").read_text().startswith(HEADING)


def test_section_in_the_middle_keeps_what_follows():
    card = "# m\n\n## Quantized versions\n\nold table\n\n## Citation\n\ncite me\n"
    out = replace_section(card, HEADING + "\n\nnew table\n")
    assert "old table" not in out and "new table" in out
    assert out.index("new table") < out.index("## Citation") and out.endswith("cite me\n")


def test_card_created_when_missing(tmp_path):
    update_card(tmp_path / "out", [row("gguf-f16", 10.0)])
    assert (tmp_path / "out" / "README.md").read_text().startswith(HEADING)
