"""Where a dataset_mixer's sources are: relative data paths are found from anywhere, in a checkout or a wheel."""

from __future__ import annotations

from pathlib import Path

# the folder holding the `zephyr` package: the repository root, or site-packages for an installed wheel
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def resolve_sources(mixer: dict) -> dict:
    """A relative data path that does not exist from the current folder is looked up next to the `zephyr`
    package, so `zephyr/demo_data` works from anywhere, in a checkout and in an installed wheel alike."""
    resolved = {}
    for name, value in mixer.items():
        location, at, split = str(name).rpartition("@") if "@" in str(name) else (str(name), "", "")
        candidate = PACKAGE_PARENT / location
        if not Path(location).is_absolute() and not Path(location).exists() and candidate.exists():
            name = str(candidate) + at + split
        resolved[name] = value
    return resolved
