"""`tracking:` where metrics go. `metrics.jsonl` is always written; the rest are optional."""

from __future__ import annotations

from ftdist.config.base import Section


class WandbConfig(Section):
    """Weights & Biases. The API key comes from the environment (WANDB_API_KEY), never from the config."""

    project: str = "ftdist"
    """W&B project."""
    entity: str | None = None
    """W&B team or user."""
    mode: str = "online"
    """`online`, `offline` or `disabled`."""


class MlflowConfig(Section):
    """MLflow tracking."""

    tracking_uri: str | None = None
    """Tracking server or folder; MLflow's default (./mlruns) when empty."""
    experiment: str = "ftdist"
    """Experiment name."""


class TrackingConfig(Section):
    """Metric sinks and the progress display (rank 0 only)."""

    tensorboard: bool = True
    """Write TensorBoard events to `<output_dir>/tb/`."""
    wandb: WandbConfig | None = None
    """Log to Weights & Biases (needs `pip install wandb`)."""
    mlflow: MlflowConfig | None = None
    """Log to MLflow (needs `pip install mlflow`)."""
    progress: bool = True
    """Show a progress bar with step, loss, tokens/s and ETA."""
    plots: bool = True
    """Write PNG plots of loss and learning rate to `<output_dir>/plots/` at the end."""
