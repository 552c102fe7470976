"""On resume, compare this run's config with the checkpoint's `config.yaml` and say what each difference means.

Why: a resume restores optimizer and scheduler state, which silently overrides some keys (the learning rate,
weight decay and betas live in the optimizer's param groups), while other keys cannot change at all without
making the checkpoint meaningless (a different model, method, tokenizer, data or sequence length). Nothing
here is silent: every differing key is reported with the value that wins, and the impossible ones are refused
with the fix, before any model or data is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ftdist.config import RunConfig
from ftdist.errors import ConfigError

FINGERPRINT_FILE = "data_fingerprint.txt"
# Keys (or prefixes) whose change a checkpoint cannot honour. `seed` is here because it shuffles and splits the
# data (it is part of the data fingerprint). `data.cache_dir` only says where the cache lives. `data.unit_mb`
# changes the prepared rows only of a set larger than one unit, and then the data fingerprint (checked below)
# holds it; a checkpoint from before the key existed has none in its config.yaml.
FROZEN = ("model.", "method.", "data.", "seed", "optim.name")
NOT_FROZEN = ("data.cache_dir", "data.unit_mb")
# Keys the restored optimizer state overrides (torch's load_state_dict replaces the param groups' values).
CHECKPOINT_WINS = ("optim.lr", "optim.weight_decay", "optim.betas", "optim.eps", "optim.momentum")
IGNORED = ("checkpoint.resume", "output_dir")  # differ by design between a run and where it resumes from


def record_data_fingerprint(folder: Path, config: RunConfig) -> None:
    """Write the data fingerprint into a checkpoint, so a resume can tell that the data files changed."""
    from ftdist.data.prepare import fingerprint

    (folder / FINGERPRINT_FILE).write_text(fingerprint(config) + "\n")


def compare_with_checkpoint(config: RunConfig, checkpoint: Path) -> str | None:
    """None if nothing differs; else a note naming each differing key and the value that wins. Raises a
    ConfigError for a key that cannot change within a run."""
    saved_path = Path(checkpoint) / "config.yaml"
    if not saved_path.exists():
        return None
    saved = _flatten(yaml.safe_load(saved_path.read_text()) or {})
    current = _flatten(config.model_dump(mode="json"))
    differing = [
        key
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key) and not key.startswith(IGNORED)
    ]
    frozen = _headline([key for key in differing if key.startswith(FROZEN) and not key.startswith(NOT_FROZEN)])
    if frozen:
        changes = "; ".join(
            f"{key} is {_show(saved.get(key))} there and {_show(current.get(key))} here" for key in frozen
        )
        fix = " ".join(f"{key}={_show(saved.get(key))}" for key in frozen)
        raise ConfigError(
            f"cannot resume from {checkpoint}: {changes}. A run's model, method, tokenizer, data, seq_len, seed "
            f"and optimizer cannot change mid-way. Put the checkpoint's values back to resume ({fix}), or, to "
            f"start from its weights, run `ftdist export {checkpoint}` and train a new run in another output_dir "
            "with model.path=<the exported folder>"
        )
    _check_data_files(config, Path(checkpoint))
    _check_not_finished(config, Path(checkpoint), saved.get("train.max_steps"))
    if not differing:
        return None
    notes = []
    for key in differing:
        old, new = _show(saved.get(key)), _show(current.get(key))
        if key.startswith(CHECKPOINT_WINS):
            notes.append(f"{key} {old} -> {new}: the checkpoint's {old} wins (its optimizer state holds it)")
        else:
            notes.append(f"{key} {old} -> {new}: this run's {new} applies")
    return (
        f"resuming from {checkpoint}, whose config.yaml differs from this run's: {'; '.join(notes)}. The run "
        "folder's config.yaml now records this run's values (the checkpoint keeps its own). To train with a "
        "different optimizer setting, start a new run from the checkpoint's weights (ftdist export)"
    )


def _check_not_finished(config: RunConfig, checkpoint: Path, saved_max_steps: Any) -> None:
    """A checkpoint at or past a *changed* train.max_steps leaves nothing to train: that is a new run pointed at
    a finished one's folder (the README's `train.max_steps=200` after the 5,000-step quick start), not a
    resume. Refused, so the finished run's config.yaml is not rewritten and no empty result comes back. The
    same command run again over a finished run (max_steps unchanged) still ends at once, as before."""
    step = _step_of(checkpoint)
    steps = config.train.max_steps
    if step is None or saved_max_steps in (None, steps) or step < steps:
        return
    raise ConfigError(
        f"{config.run_dir} holds a run already at step {step} ({checkpoint}), at or past this run's "
        f"train.max_steps={steps}, so there is nothing left to train; for a new run give it its own folder "
        f"(output_dir=runs/NAME), start over here with checkpoint.resume=never, or continue it with "
        f"train.max_steps above {step}"
    )


def _step_of(checkpoint: Path) -> int | None:
    name = Path(checkpoint).name
    return int(name.removeprefix("step-")) if name.startswith("step-") and name[5:].isdigit() else None


def _check_data_files(config: RunConfig, checkpoint: Path) -> None:
    """The same data settings over changed data files is still a different run."""
    recorded = checkpoint / FINGERPRINT_FILE
    if not recorded.exists():
        return
    from ftdist.data.prepare import fingerprint

    if recorded.read_text().strip() != fingerprint(config):
        raise ConfigError(
            f"cannot resume from {checkpoint}: the data under data.path={config.data.path} changed since it was "
            "written (its fingerprint differs), so the data position it saved no longer means anything. Restore "
            "the original files to resume, or start a new run in another output_dir"
        )


def _headline(keys: list[str]) -> list[str]:
    """When a section's `name` changed (method.name, optim.name), its other keys differ only as a consequence
    (another method's defaults): report the name alone."""
    renamed = {key.removesuffix("name") for key in keys if key.endswith(".name")}
    return [key for key in keys if key.endswith(".name") or not key.startswith(tuple(renamed))]


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tuple(tree) if isinstance(tree, list) else tree}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ",".join(str(v) for v in value) + "]"
    return "null" if value is None else str(value)
