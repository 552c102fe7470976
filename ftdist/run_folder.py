"""A run's folder: one property per file a run writes, and loading the model a run trained.

Every module that reads or writes a run asks `RunFolder` for the path (as submitit's `JobPaths` names a job's
files), so a file is named once. `RunFolder.of(path)` finds the run that a model folder (`final/`, a checkpoint)
belongs to. This module imports no torch at import time: login-node commands use it too.

    <run>/config.yaml      the resolved run config          <run>/metrics.jsonl  every logged metric
    <run>/tb/              TensorBoard events                <run>/plots/         loss.png, lr.png
    <run>/samples.txt      generations of eval.prompts       <run>/eval/          base.json, tuned.json, ...
    <run>/checkpoints/     step-<N>/ folders and `latest`    <run>/final/         the trained model (HF folder)
    <run>/base/            an adapter run's saved scratch base
    <run>/merged/, <run>/export/   what `ftdist merge` and `ftdist export` write by default
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ftdist.errors import FtdistError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ftdist.config import RunConfig

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class RunFolder:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / "config.yaml")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    tensorboard = property(lambda self: self.root / "tb")
    plots = property(lambda self: self.root / "plots")
    samples = property(lambda self: self.root / "samples.txt")
    eval = property(lambda self: self.root / "eval")
    checkpoints = property(lambda self: self.root / "checkpoints")
    final = property(lambda self: self.root / "final")
    scratch_base = property(lambda self: self.root / "base")
    merged = property(lambda self: self.root / "merged")
    export = property(lambda self: self.root / "export")
    # DPO/KTO `reference: precompute`: the starting model's scores of every row (a folder with scores.npz)
    reference = property(lambda self: self.root / "reference")

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    @property
    def latest(self) -> Path | None:
        """The checkpoint the `latest` pointer names (not verified), or None."""
        pointer = self.checkpoints / "latest"
        return self.checkpoints / pointer.read_text().strip() if pointer.exists() else None

    @classmethod
    def of(cls, path: str | Path) -> RunFolder | None:
        """The run that `path` is or lies in (`final/`, `checkpoints/step-N`), or None for a plain model folder.
        A run is a folder with its config and what training wrote beside it (a checkpoint holds a config too)."""
        path = Path(path)
        for candidate in (path, path.parent, path.parent.parent):
            run = cls(candidate)
            if run.config.exists() and any(p.exists() for p in (run.metrics, run.checkpoints, run.final)):
                return run
        return None

    def load_config(self) -> RunConfig:
        from ftdist.config import load_config

        return load_config(self.config)


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").exists() or (path / ADAPTER_CONFIG).exists()


def resolve_model_folder(run_or_model: str | Path) -> Path:
    """A run folder means its `final/` (or, before it finished, its latest checkpoint); else the folder itself."""
    path = Path(run_or_model)
    run = RunFolder(path)
    if is_model_folder(run.final):
        return run.final
    if run.latest is not None:
        return run.latest
    if is_model_folder(path):
        return path
    raise FtdistError(
        f"{run_or_model} is neither a run folder (with final/ or checkpoints/) nor a model folder "
        "(with config.json or adapter_config.json); pass e.g. runs/tiny_sql_gpt"
    )


def run_config_for(folder: Path) -> RunConfig | None:
    """The config a model folder was trained under: a checkpoint's own `config.yaml` (it records the config it was
    written with, and travels with it when copied), else the config of the run it lies in."""
    from ftdist.config import load_config

    if (folder / "config.yaml").exists():
        return load_config(folder / "config.yaml")
    run = RunFolder.of(folder)
    return run.load_config() if run else None


def run_root(model_folder: Path) -> Path:
    """The run a model folder lies in (where merge and export write by default); beside it for a plain folder."""
    run = RunFolder.of(model_folder)
    return run.root if run else model_folder.parent


# --- loading a trained model -------------------------------------------------------------------------------------
def load_trained(
    run_or_model: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, PreTrainedTokenizerBase, Path]:
    """(model, tokenizer, source folder). Adapter runs come back as a peft model on their base, unmerged."""
    import torch
    from transformers import AutoTokenizer

    from ftdist.config import load_config
    from ftdist.models import model_class_of_folder
    from ftdist.strategies import is_checkpoint

    folder = resolve_model_folder(run_or_model)
    config = run_config_for(folder)
    if (folder / ADAPTER_CONFIG).exists():
        model = _adapter_model(folder, config)
    elif (folder / "config.yaml").exists() and is_checkpoint(folder):
        model = _checkpoint_model(folder, config or load_config(folder / "config.yaml"))
    else:
        auto_class = model_class_of_folder(folder)  # a reward model's config names a sequence classifier
        model = auto_class.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.to(device).eval(), tokenizer, folder


def load_base(path: Path | str, config: RunConfig | None) -> nn.Module:
    """A base model as training saw it. A QLoRA base is loaded 4-bit as in training, then de-quantized to fp32,
    so adapters see the weights they were trained against and a merge is exact up to float rounding."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftdist.models import head_options, load_pretrained, model_class
    from ftdist.models.quantized import quantized_load_options

    options = quantized_load_options(config) if config is not None else {}
    auto_class = model_class(config) if config is not None else AutoModelForCausalLM
    reward = config is not None and config.method.objective == "reward"
    head = head_options(config, _tokenizer_of(Path(path))) if reward else {}  # a scorer pools at its pad token
    trust = bool(config and config.model.trust_remote_code)
    base = load_pretrained(str(path), trust_remote_code=trust, auto_class=auto_class, **options, **head)
    if options:
        base = base.dequantize()  # 4-bit -> the exact de-quantized weights, in the compute dtype
        base = base.to(torch.float32)
    return base


def resolve_base(base: str | None, adapter: Path) -> Path | str:
    """The folder (or Hub id) an adapter's recorded base names: as given, from the working directory; else a
    relative path from each parent of the adapter folder (a moved checkout); else a Hub id `namespace/name`."""
    from ftdist.config.files import HUB_ID

    if base:
        if Path(base).expanduser().exists():
            return Path(base).expanduser()
        if not Path(base).is_absolute():
            for parent in Path(adapter).resolve().parents:
                if (parent / base).exists():
                    return parent / base
        if HUB_ID.fullmatch(base):
            return base
    raise FtdistError(
        f"the adapter in {adapter} needs its base model at {base!r}, which does not exist here; restore that "
        "folder, run from the folder the run was trained in, or edit base_model_name_or_path in adapter_config.json"
    )


def _adapter_model(folder: Path, config: RunConfig | None) -> nn.Module:
    """The adapter on its base (see `load_base`)."""
    from ftdist.methods.lora import import_peft, without_peft_deprecation_notice

    import_peft()
    from peft import PeftConfig, PeftModel

    base = load_base(resolve_base(PeftConfig.from_pretrained(folder).base_model_name_or_path, folder), config)
    with without_peft_deprecation_notice():
        return PeftModel.from_pretrained(base, folder)


def _checkpoint_model(folder: Path, config: RunConfig) -> nn.Module:
    """The trained model from any strategy's checkpoint, consolidated offline: the method builds the model (a
    plain one from the checkpoint's config.json, or the base with fresh adapters) and its state filter loads
    what the checkpoint holds."""
    from transformers import AutoConfig

    from ftdist.methods import method_class
    from ftdist.models import model_class
    from ftdist.strategies import read_checkpoint_state

    method = method_class(config.method.weights)
    if method.state_filter.trainable_only:
        from ftdist.models import base_folder

        model = method.apply(load_base(base_folder(config), config), config)
    else:
        model = model_class(config).from_config(AutoConfig.from_pretrained(folder))
    method.state_filter.load_into(model, read_checkpoint_state(folder), str(folder))
    return model.eval()


def _tokenizer_of(folder: Path):
    """The tokenizer saved beside a base (for its pad token), or None where it cannot be read."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError):
        return None
