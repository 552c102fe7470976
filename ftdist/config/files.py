"""`file_problems(config)`: the files a run config names exist here and can be read, and Hub ids look like ids.

The schema checks a file's shape; this checks the world the file points at, before a job waits in a queue:
`data.path`, `model.path` and `model.tokenizer` when they are local paths, `model.gguf_file`, the DeepSpeed JSON,
and each eval task's data, prefix and schema files. A name that is not a local path must be a Hub id of the form
`namespace/name`. Each problem is one sentence naming the key, where it was set, and the fix. No torch.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from ftdist.config.loader import origin_of

# ftdist.data.sources.resolve_data_path resolves `builtin:` too, but importing ftdist.data loads torch and
# transformers (its __init__), which a login-node check must not pay for; this module checks, it does not read.
BUILTIN_PREFIX = "builtin:"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
NOT_PATHS = ("char", "gguf")  # model.tokenizer values that name no file


def file_problems(config) -> list[str]:
    """One sentence per missing or unreadable file (or malformed Hub id) the config names; [] when all is well."""
    problems = [_data_file(config, "data.path", config.data.path, "your training data")]
    if config.data.sources:  # then data.path is not read
        sources = enumerate(config.data.sources)
        problems = [_data_file(config, f"data.sources.{i}.path", s.path, "a training data source") for i, s in sources]
    model = config.model
    if model.path is not None:
        problems.append(_model_source(config, "model.path", model.path))
        if model.gguf_file is not None and Path(model.path).expanduser().is_dir():
            gguf = Path(model.path).expanduser() / model.gguf_file
            problems.append(_local(config, "model.gguf_file", model.gguf_file, gguf, "a GGUF file in model.path"))
    if model.tokenizer is not None and model.tokenizer not in NOT_PATHS:
        problems.append(_model_source(config, "model.tokenizer", model.tokenizer))
    deepspeed_json = getattr(config.strategy, "deepspeed_config", None)
    if deepspeed_json:
        path = Path(deepspeed_json).expanduser()
        problems.append(_local(config, "strategy.deepspeed_config", deepspeed_json, path, "a DeepSpeed JSON"))
    for index, task in enumerate(config.eval.tasks):
        for field in ("path", "prefix_file", "schemas"):
            value = getattr(task, field)
            if value is not None:
                problems.append(_data_file(config, f"eval.tasks[{index}].{field}", value, f"the {task.name} file"))
        if task.reward_model is not None:
            problems.append(_model_source(config, f"eval.tasks[{index}].reward_model", task.reward_model))
    return [problem for problem in problems if problem]


def _data_file(config, key: str, spec: str, what: str) -> str:
    if spec.startswith(BUILTIN_PREFIX):
        name = spec.removeprefix(BUILTIN_PREFIX)
        if not (Path(str(resources.files("ftdist"))) / "assets" / name).is_file():
            return (
                f"{_where(config, key)}{key}={spec}: ftdist ships no file named {name!r}; see ftdist/assets/README.md."
            )
        return ""
    return _local(config, key, spec, Path(spec).expanduser(), what)


def _model_source(config, key: str, spec: str) -> str:
    """A local folder (which must exist and be readable) or a Hub id (`namespace/name`)."""
    path = Path(spec).expanduser()
    if path.exists() or _looks_local(spec):
        return _local(config, key, spec, path, "a model folder")
    if HUB_ID.fullmatch(spec):
        return ""
    return (
        f"{_where(config, key)}{key}={spec} is neither a folder here nor a Hugging Face Hub id (namespace/name, e.g. "
        "meta-llama/Llama-2-7b-hf); give the folder's path or the full Hub id."
    )


def _looks_local(spec: str) -> bool:
    """Written as a path, not a Hub id: absolute, relative with ./ ../ ~, or more than one folder deep."""
    return spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1 or spec.endswith("/")


def _local(config, key: str, spec: str, path: Path, what: str) -> str:
    where = _where(config, key)
    if not path.exists():
        return (
            f"{where}{key}={spec}: no such file or folder here (looked for {path.resolve()}); put {what} there or "
            f"point {key} at it (on the command line: {key}=PATH)."
        )
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        return (
            f"{where}{key}={spec} is not readable by this user; fix its permissions (chmod) or point {key} elsewhere."
        )
    return ""


def _where(config, key: str) -> str:
    origin = origin_of(config, key.split("[")[0])
    return f"{origin}: " if origin else ""
