"""Load a RunConfig from YAML plus `key.sub=value` overrides, with errors that point at the file and line.

pydantic validates; this module only remembers where every key came from (file and line, or the command
line) so that an error can say "cluster_configs/x.yaml line 12: unknown key train.max_stpes, did you mean
train.max_steps?". PyYAML's composed node tree carries the line marks, so no custom parser is needed.
"""

from __future__ import annotations

import copy
import difflib
import weakref
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ftdist.config.run import RunConfig
from ftdist.config.strategy import SETTINGS_BY_NAME, owner_of
from ftdist.errors import ConfigError

KeyPath = tuple[str, ...]


def load_config(source: str | Path | dict | RunConfig | None = None, overrides: list[str] | tuple = ()) -> RunConfig:
    """Build a validated RunConfig from a YAML path, a dict or an existing RunConfig, then apply overrides."""
    if isinstance(source, RunConfig):
        if not overrides:
            return source
        source = source.model_dump(mode="json")
    origins: dict[KeyPath, str] = {}
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, dict):
        raw = copy.deepcopy(source)  # overrides must never edit the caller's dict
    else:
        raw = _read_yaml(Path(source), origins)
        raw.setdefault("name", Path(source).stem)
    for override in overrides:
        _apply_override(raw, override, origins)
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, origins)) from None
    _ORIGINS[id(config)] = origins
    weakref.finalize(config, _ORIGINS.pop, id(config), None)
    return config


# Where each key of a loaded config came from, for checks that run after loading (`ftdist.config.files`). Kept
# beside the config, not in it: a config's equality and its dump must not depend on the file it was read from.
_ORIGINS: dict[int, dict[KeyPath, str]] = {}


def origin_of(config: RunConfig, key: str) -> str:
    """'cluster_configs/x.yaml line 12' or "command-line override 'k=v'" for a dotted key; '' when unknown."""
    return _origin(tuple(key.split(".")), _ORIGINS.get(id(config), {})).removesuffix(": ")


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """`train.max_steps=200` -> (("train", "max_steps"), 200). Values are parsed as YAML scalars/lists."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.sub=value, e.g. train.max_steps=200")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return tuple(key.strip().split(".")), parsed


def _apply_override(raw: dict, text: str, origins: dict[KeyPath, str]) -> None:
    path, value = parse_override(text)
    node = raw
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if isinstance(child, str):  # `method: lora` shorthand, then `method.r=8`
            child = {"name": child}
        if not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
        origins.setdefault(path[: depth + 1], f"command-line override {text!r}")
    if value is None and _section_model(path) is not None:
        node.pop(path[-1], None)  # `method.quantization=null` unsets a section: back to its defaults
    else:
        node[path[-1]] = value
    origins[path] = f"command-line override {text!r}"


def _read_yaml(path: Path, origins: dict[KeyPath, str]) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path (run from the repository root?)")
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (model:, data:, train: ...)")
    return _to_python(root, (), path, origins)


def _to_python(node: yaml.Node, path: KeyPath, file: Path, origins: dict[KeyPath, str]) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            origins[path + (key,)] = f"{file} line {key_node.start_mark.line + 1}"
            out[key] = _to_python(value_node, path + (key,), file, origins)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path, file, origins) for item in node.value]
    return yaml.safe_load(yaml.serialize(node))


def _describe(error: ValidationError, origins: dict[KeyPath, str]) -> str:
    sentences = []
    for item in error.errors():
        path, tag = _without_union_tag(tuple(str(part) for part in item["loc"] if not isinstance(part, int)))
        where = _origin(path, origins)
        dotted = ".".join(path) or "config"
        if item["type"] == "extra_forbidden" and path[:1] == ("strategy",) and owner_of(path[-1]):
            sentences.append(
                f"{where}{dotted} is a {owner_of(path[-1])} setting but strategy.name={tag}; remove it or set "
                f"strategy.name={owner_of(path[-1])}."
            )
        elif item["type"] == "extra_forbidden":
            hint = _suggest(path, SETTINGS_BY_NAME.get(tag or ""))
            sentences.append(f"{where}unknown key {dotted}.{hint}")
        elif item["type"] == "unknown_strategy":
            sentences.append(f"{where}{item['msg']} (got {_strategy_name(item.get('input'))!r}).")
        elif item["type"] in ("value_error", "assertion_error"):
            sentences.append(f"{where}{_strip_value_error(item['msg'])}.")
        else:
            got = item.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            sentences.append(f"{where}{dotted}: {item['msg']}{shown}.")
    return "Invalid config: " + " ".join(sentences)


def _without_union_tag(path: KeyPath) -> tuple[KeyPath, str | None]:
    """pydantic puts the chosen union member into the location (`strategy.ddp.zero_stage`); drop it."""
    if len(path) >= 2 and path[0] == "strategy" and path[1] in SETTINGS_BY_NAME:
        return (path[0], *path[2:]), path[1]
    return path, None


def _strategy_name(raw: Any) -> Any:
    return raw.get("name") if isinstance(raw, dict) else raw


def _origin(path: KeyPath, origins: dict[KeyPath, str]) -> str:
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]] + ": "
    return ""


def _strip_value_error(message: str) -> str:
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


# Sections that moved out of the run config, and where they went.
MOVED = {
    ("ray",): " Ray settings are a launcher profile, not part of the run config: pass them as flags "
    "(ftdist launch ray --workers 2 --max-failures 3) or in a --profile file (cluster_configs/ray/*.yaml).",
}


def _suggest(path: KeyPath, section: type[BaseModel] | None = None) -> str:
    """A "did you mean" for an unknown key: a close name in the same section, or the same name elsewhere."""
    if path[:1] in MOVED:
        return MOVED[path[:1]]
    section = section or _section_model(path[:-1])
    key = path[-1]
    if section is not None:
        close = difflib.get_close_matches(key, list(section.model_fields), n=1, cutoff=0.6)
        if close:
            return f" Did you mean {'.'.join(path[:-1] + (close[0],))}?"
    elsewhere = [p for p in _all_field_paths(RunConfig) if p[-1] == key]
    if elsewhere:
        return f" Did you mean {'.'.join(elsewhere[0])}? (it belongs in the {elsewhere[0][0]} section)"
    if section is not None:
        return f" Valid keys here: {', '.join(section.model_fields)}."
    return ""


def _section_model(path: KeyPath) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = _model_in(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _all_field_paths(model: type[BaseModel], prefix: KeyPath = ()) -> list[KeyPath]:
    paths = []
    for name, field in model.model_fields.items():
        paths.append(prefix + (name,))
        inner = _model_in(field.annotation)
        if inner is not None:
            paths.extend(_all_field_paths(inner, prefix + (name,)))
    return paths


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML, suitable for `config.yaml` in the run folder and for reloading."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
