"""The strategy combinations a plan compares, and the `strategy:` section each one stands for."""

from __future__ import annotations

from dataclasses import dataclass

from ftdist.planner.hardware import Hardware
from ftdist.planner.workload import Workload


@dataclass(frozen=True)
class Candidate:
    """One way to run: a strategy, its sharding/offload settings, checkpointing on or off, and how many
    devices it uses (`single` uses one, whatever the hardware has)."""

    strategy: str  # single | ddp | fsdp | deepspeed
    world: int
    checkpointing: bool
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False

    @property
    def label(self) -> str:
        name = {"fsdp": "fsdp2", "deepspeed": f"zero{self.zero_stage}"}.get(self.strategy, self.strategy)
        offload = "+".join(x for x, on in (("opt", self.offload_optimizer), ("param", self.offload_param)) if on)
        return f"{name}{' offload ' + offload if offload else ''}{' +ckpt' if self.checkpointing else ''}"

    def strategy_section(self) -> dict:
        """The run config's `strategy:` for this candidate (the fields config/strategy.py defines today)."""
        section: dict = {"name": self.strategy, "activation_checkpointing": self.checkpointing}
        if self.strategy == "deepspeed":
            section["zero_stage"] = self.zero_stage
            section["offload_optimizer"] = "cpu" if self.offload_optimizer else "none"
        if self.offload_param:
            section["offload_param"] = "cpu"
        return section


def enumerate_candidates(workload: Workload, hardware: Hardware) -> list[Candidate]:
    """Every combination the hardware allows and ftdist supports for this method.

    `single` always (it uses one device); with more than one device, DDP, FSDP2 (with and without CPU
    offload) and ZeRO-1/2/3 (optimizer offload; ZeRO-3 also parameter offload). A quantized base (qlora)
    runs under single and ddp only (config/strategy_checks.py refuses sharding it). No offload on CPU/MPS.
    """
    world = hardware.world
    offload_ok = hardware.device.kind == "cuda"
    shapes: list[tuple] = [("single", 1, 0, False, False)]
    if world > 1:
        shapes.append(("ddp", world, 0, False, False))
        if workload.method != "qlora":
            shapes.append(("fsdp", world, 0, False, False))
            if offload_ok:
                shapes.append(("fsdp", world, 0, False, True))
            for stage in (1, 2, 3):
                shapes.append(("deepspeed", world, stage, False, False))
                if offload_ok:
                    shapes.append(("deepspeed", world, stage, True, False))
            if offload_ok:
                shapes.append(("deepspeed", world, 3, True, True))
    return [
        Candidate(name, n, ckpt, zero_stage=stage, offload_optimizer=opt, offload_param=param)
        for name, n, stage, opt, param in shapes
        for ckpt in (False, True)
    ]


def candidate_from_config(strategy: object, world: int) -> Candidate:
    """The candidate a run config's `strategy:` section names (for the estimate printed at run start)."""
    name = strategy.name
    return Candidate(
        strategy=name,
        world=1 if name == "single" else world,
        checkpointing=bool(strategy.activation_checkpointing),
        zero_stage=strategy.zero_stage if name == "deepspeed" else 0,
        offload_optimizer=name == "deepspeed" and strategy.offload_optimizer != "none",
        offload_param=getattr(strategy, "offload_param", "none") != "none",
    )
