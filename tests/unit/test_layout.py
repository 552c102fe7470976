"""docs/architecture.md is the map of the package: every room and top-level module it names exists, and every
one that exists is on the map, so the map moves with the code."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAP = (REPO / "docs" / "architecture.md").read_text()


def _names_on_the_map() -> set[str]:
    block = MAP.split("```", 2)[1]  # the first code block: the package tree
    names = set()
    for line in block.splitlines():
        names.update(re.findall(r"\b([a-z_]+(?:\.py|/))", line))
    return names


def test_every_room_and_top_level_module_is_on_the_map() -> None:
    on_map = _names_on_the_map()
    package = REPO / "ftdist"
    rooms = {f"{p.name}/" for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.name for p in package.glob("*.py")}
    assert rooms - {"assets/"} <= on_map, f"rooms missing from docs/architecture.md: {sorted(rooms - on_map)}"
    assert modules <= on_map, f"modules missing from docs/architecture.md: {sorted(modules - on_map)}"


def test_every_module_the_map_names_in_a_room_exists() -> None:
    block = MAP.split("```", 2)[1]
    room = None
    for line in block.splitlines():
        top = re.match(r"^  ([a-z_]+)/", line)
        if top:
            room = top.group(1)
            continue
        inner = re.match(r"^    ([a-z_]+\.py)", line)
        if inner and room:
            assert (REPO / "ftdist" / room / inner.group(1)).exists(), f"ftdist/{room}/{inner.group(1)} is on the map"
