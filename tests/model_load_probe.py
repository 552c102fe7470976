"""One rank of tests/test_model_load.py: set up a trainer (no step) and record how its model arrived.

Run under torchrun: `python tests/model_load_probe.py OUT CONFIG [key=value ...]`. Each rank writes OUT/rank<N>.pt:
  * `read`: the safetensors files this rank read tensor data from (transformers' `safe_open`, wrapped here);
  * `empty`: whether the model `Strategy.materialize` returned held no weights of its own (meta, or ZeRO-3
    partitions), i.e. whether this rank ever held a full copy;
  * `tied`: whether lm_head and the embeddings are still one parameter after `prepare`;
  * `buffers`: every buffer after `prepare` (rotary inv_freq is in no state dict);
  * `parameters`: every parameter's local tensor after `prepare` (whole under DDP and ZeRO-1/2, a shard otherwise);
  * `dtypes`: trainable and frozen parameter dtypes after materialize;
  * rank 0 only: `full` (the strategy's gathered weights after `prepare`) and `reference` (what one process
    builds: the recipe built again from the same random state, without any strategy).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import transformers.modeling_utils as modeling_utils

from ftdist.strategies.materialize import is_meta
from ftdist.trainer import Trainer

READ: set[str] = set()
_open = modeling_utils.safe_open


class _Slice:
    def __init__(self, inner, file: str) -> None:
        self._inner, self._file = inner, file

    def __getitem__(self, index):
        READ.add(self._file)
        return self._inner[index]

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _RecordingOpen:
    """transformers' `safe_open`, recording which files had tensor data read (not just their header)."""

    def __init__(self, file, *args, **kwargs) -> None:
        self._inner, self._file = _open(file, *args, **kwargs), str(file)

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self._inner.__exit__(*exc)

    def get_tensor(self, name):
        READ.add(self._file)
        return self._inner.get_tensor(name)

    def get_slice(self, name):
        return _Slice(self._inner.get_slice(name), self._file)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _holds_no_weights(model: torch.nn.Module) -> bool:
    frozen = [p for p in model.parameters() if not p.requires_grad]
    return is_meta(model) or all(hasattr(p, "ds_id") and p.numel() == 0 for p in frozen)


def main(out: Path, config: str, overrides: list[str]) -> None:
    modeling_utils.safe_open = _RecordingOpen
    trainer = Trainer(config, overrides)
    record: dict = {}
    setup_job = trainer.setup_job

    def recording_setup_job() -> None:
        setup_job()
        strategy, materialize = trainer.strategy, trainer.strategy.materialize

        def recording_materialize(recipe):
            recipe.folder  # noqa: B018  (saving the scratch base reseeds: resolve it first, on every rank)
            before = torch.get_rng_state()
            model = materialize(recipe)
            record["empty"] = _holds_no_weights(model)
            record["dtypes"] = {
                "trainable": sorted({str(p.dtype) for p in model.parameters() if p.requires_grad}),
                "frozen": sorted({str(p.dtype) for p in model.parameters() if not p.requires_grad}),
            }
            if strategy.env.is_main:  # what one process builds from the same random state
                after = torch.get_rng_state()
                torch.set_rng_state(before)
                record["reference"] = {k: v.detach().clone() for k, v in recipe.build().state_dict().items()}
                torch.set_rng_state(after)
            return model

        strategy.materialize = recording_materialize

    trainer.setup_job = recording_setup_job
    trainer.setup()
    module = trainer.strategy.unwrap(trainer.model).get_base_model()
    record["tied"] = module.lm_head.weight is module.get_input_embeddings().weight
    record["buffers"] = {name: b.detach().cpu().clone() for name, b in trainer.model.named_buffers()}
    local = {name: getattr(p, "_local_tensor", p) for name, p in module.named_parameters()}
    record["parameters"] = {name: p.detach().cpu().clone() for name, p in local.items()}
    full = trainer.strategy.full_state_dict(trainer.model)  # collective
    record["read"] = sorted(READ)
    if trainer.env.is_main:
        record["full"] = full
    torch.save(record, out / f"rank{trainer.env.rank}.pt")
    trainer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
