"""Turn any strategy's checkpoint folder into one full state dict, offline (no process group, no GPU).

`ftdist export` and the tests use this. The format is detected from what the folder holds:
  * `model.safetensors`  -- `single` and `ddp` (the whole model, already consolidated);
  * `dcp/`               -- `fsdp`: a torch.distributed.checkpoint folder; only the model's tensors are read;
  * `deepspeed/`         -- `deepspeed`: ZeRO partitions, merged by DeepSpeed's own zero_to_fp32 helper into
                            the fp32 master weights (not the bf16 working copy).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ftdist.errors import FtdistError

WRITTEN_BY = {"whole": "single or ddp", "dcp": "fsdp", "deepspeed": "deepspeed"}
FORMATS = ("single/ddp: model.safetensors", "fsdp: dcp/", "deepspeed: deepspeed/")


def checkpoint_format(checkpoint_dir: str | Path) -> str:
    """`whole` | `dcp` | `deepspeed`; an FtdistError naming the known layouts otherwise."""
    folder = Path(checkpoint_dir)
    from ftdist.strategies.deepspeed import CHECKPOINT_TAG
    from ftdist.strategies.single import MODEL_FILE

    if (folder / MODEL_FILE).is_file():
        return "whole"
    if (folder / "dcp" / ".metadata").is_file():
        return "dcp"
    if (folder / CHECKPOINT_TAG).is_dir():
        return "deepspeed"
    raise FtdistError(
        f"{folder} is not an ftdist checkpoint this version can read (looked for {', '.join(FORMATS)}); "
        "point at a folder like runs/<name>/checkpoints/step-<N>"
    )


def load_full_state_dict(checkpoint_dir: str | Path) -> dict[str, torch.Tensor]:
    """The model's full state dict (CPU tensors, names as in the Hugging Face model)."""
    folder = Path(checkpoint_dir)
    kind = checkpoint_format(folder)
    if kind == "whole":
        from safetensors.torch import load_file

        from ftdist.strategies.single import MODEL_FILE

        return load_file(str(folder / MODEL_FILE))
    if kind == "dcp":
        return _from_dcp(folder / "dcp")
    return _from_deepspeed(folder)


def _from_dcp(dcp_dir: Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
    # Read only the "model.*" entries (the optimizer state in the same folder is twice as big and not needed).
    # dcp_to_torch_save would convert everything; a planned load of selected keys reads just these tensors.
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    reader = dcp.FileSystemReader(str(dcp_dir))
    metadata = reader.read_metadata().state_dict_metadata
    state = {
        key: torch.empty(entry.size, dtype=entry.properties.dtype)
        for key, entry in metadata.items()
        if key.startswith(prefix) and isinstance(entry, TensorStorageMetadata)
    }
    dcp.load(state, storage_reader=reader, no_dist=True)  # fills `state` in place
    return {key.removeprefix(prefix): tensor for key, tensor in state.items()}


def _from_deepspeed(folder: Path) -> dict[str, torch.Tensor]:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from ftdist.strategies.deepspeed import CHECKPOINT_TAG

    state = get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=CHECKPOINT_TAG)
    return {name: tensor.contiguous() for name, tensor in state.items()}


def load_model(checkpoint_dir: str | Path) -> nn.Module:
    """A plain transformers model (config.json from the checkpoint) holding the consolidated weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(checkpoint_dir)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    missing, unexpected = model.load_state_dict(load_full_state_dict(folder), strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or [])
    missing = [key for key in missing if key not in tied]
    if missing or unexpected:
        raise FtdistError(
            f"{folder}: the weights do not fit the model in its config.json (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); was the checkpoint written by a different model?"
        )
    return model.eval()
