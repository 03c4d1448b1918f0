"""UltraFeedback's own texts (Cui et al. 2023, github.com/OpenBMB/UltraFeedback, MIT): the judge's system prompt
and per-aspect rubric templates, the critique prompts, and the principle system prompts of the answerers.

They are data, loaded at run time and never re-worded: from the official repository pinned to one commit
(downloaded once into the zephyr cache), or from a local copy the user names with --ultrafeedback_dir, which is
either a clone of that repository or a folder of the strings as `.txt` files plus `principles.json` (the layout of
../shared/data/ultrafeedback). Strings are read from the Python sources with `ast.literal_eval` on the assigned
values only; no downloaded code runs.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import urllib.request
from pathlib import Path

from ..cache import cache_root
from ..errors import ConfigError

REPO = "OpenBMB/UltraFeedback"
COMMIT = "bf80fd46a8c6ceecc86e8babb1ae8771f26a3cbb"
RAW_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/"

PREFERENCE = "src/data_annotation/preference_templates.py"
CRITIQUE = "src/data_annotation/annotate_critique.py"
RESCORE = "src/data_annotation/fix_overall_score_issue.py"
SAMPLING = "src/comparison_data_generation/main.py"

# text name -> (source file, variable assigned in it); the .txt name in a folder copy is `<text name>.txt`
SOURCES = {
    "annotation_system_prompt": (PREFERENCE, "system_prompt"),
    "instruction_following_template": (PREFERENCE, "instruction_following_template"),
    "honesty_template": (PREFERENCE, "honesty_template"),
    "truthfulness_template_with_answer": (PREFERENCE, "truthfulness_template_with_answer"),
    "truthfulness_template_without_answer": (PREFERENCE, "truthfulness_template_without_answer"),
    "helpfulness_template_with_answer": (PREFERENCE, "helpfulness_template_with_answer"),
    "helpfulness_template_without_answer": (PREFERENCE, "helpfulness_template_without_answer"),
    "critique_system_prompt": (CRITIQUE, "system_prompt"),
    "critique_feedback_template": (CRITIQUE, "feedback_prompt"),
    "critique_rescore_template": (RESCORE, "feedback_prompt"),
    "principles": (SAMPLING, "principles"),
}


@dataclasses.dataclass(frozen=True)
class Texts:
    strings: dict  # text name -> str (principles -> {principle: [system prompts]})
    origin: str  # where they were read from, for the report

    def __getitem__(self, name: str):
        return self.strings[name]


def assigned_literals(source: str) -> dict[str, object]:
    """Top-level `name = <literal>` assignments of a Python file, without running it."""
    values = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return values


def _from_sources(read) -> dict:
    parsed: dict[str, dict] = {}
    strings = {}
    for name, (path, variable) in SOURCES.items():
        if path not in parsed:
            parsed[path] = assigned_literals(read(path))
        if variable not in parsed[path]:
            raise ConfigError(f"--ultrafeedback_dir: {path} does not assign {variable!r}; is it UltraFeedback "
                              f"at commit {COMMIT}?")
        strings[name] = parsed[path][variable]
    return strings


def _from_folder(folder: Path) -> dict:
    if (folder / PREFERENCE).is_file():
        return _from_sources(lambda path: (folder / path).read_text(encoding="utf-8"))
    strings = {}
    for name in SOURCES:
        path = folder / (f"{name}.json" if name == "principles" else f"{name}.txt")
        if not path.is_file():
            raise ConfigError(f"--ultrafeedback_dir: {path} is missing (need a clone of {REPO} or its texts as "
                              "<name>.txt plus principles.json)")
        text = path.read_text(encoding="utf-8")
        strings[name] = json.loads(text) if name == "principles" else text
    return strings


def _download(path: str) -> str:
    cached = cache_root() / "ultrafeedback" / COMMIT / path
    if not cached.is_file():
        try:
            with urllib.request.urlopen(RAW_URL + path, timeout=60) as response:
                data = response.read()
        except OSError as err:
            raise ConfigError(f"--ultrafeedback_dir: could not download {RAW_URL + path} ({err}); clone {REPO} "
                              f"at {COMMIT} and pass its folder with --ultrafeedback_dir") from err
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(cached)
    return cached.read_text(encoding="utf-8")


def load(folder: str = "") -> Texts:
    """The texts from a local copy (`folder`), else from the pinned official commit (cached)."""
    if folder:
        path = Path(folder)
        if not path.is_dir():
            raise ConfigError(f"--ultrafeedback_dir: {folder} is not a folder")
        return Texts(_from_folder(path), str(path))
    return Texts(_from_sources(_download), f"{REPO}@{COMMIT}")
