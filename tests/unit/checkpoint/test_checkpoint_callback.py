"""The trainer's `on_checkpoint` hook, which launchers (Ray Train) use to register checkpoints."""

from __future__ import annotations

from ftdist.checkpoint.folders import verify
from ftdist.trainer import train


def test_on_checkpoint_is_called_with_each_sealed_folder_and_the_last_metrics(tmp_path):
    calls = []
    overrides = [f"output_dir={tmp_path}/run", "train.max_steps=4", "checkpoint.every=2", "train.eval_every=0"]
    overrides += ["train.log_every=1", "tracking.progress=false", "schedule.warmup_steps=1"]

    def record(step, folder, metrics):
        calls.append((step, folder.name, verify(folder), metrics["loss"]))

    train("cluster_configs/tiny_llama_full.yaml", overrides, on_checkpoint=record)
    assert [(step, name, problem) for step, name, problem, _ in calls] == [(2, "step-2", None), (4, "step-4", None)]
    assert all(loss > 0 for *_, loss in calls)
