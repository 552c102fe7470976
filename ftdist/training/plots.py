"""PNG plots of a finished run, drawn from its `metrics.jsonl` and its `config.yaml`.

Titles name the run. The learning rate is drawn at every step from the run's own schedule (`config.yaml`: the
same `lr_multiplier` the trainer steps), so a warmup shorter than the logging interval still shows; the logged
values are marked on it (they differ only where a resumed optimizer kept its checkpoint's learning rate).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ftdist.run_folder import RunFolder
from ftdist.training.tracking import read_metrics


def write_plots(run_dir: Path) -> list[Path]:
    """`plots/loss.png` (train loss, eval train/val loss) and `plots/lr.png`. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters
    import matplotlib.pyplot as plt

    events = read_metrics(run_dir)
    config = _run_config(Path(run_dir))
    name = config.get("name") or Path(run_dir).name
    folder = RunFolder(run_dir).plots
    folder.mkdir(parents=True, exist_ok=True)
    train = [(e["step"], e["loss"]) for e in events if "loss" in e]
    evals = [(e["step"], e["train_loss"], e["val_loss"]) for e in events if "val_loss" in e]
    rates = [(e["step"], e["lr"]) for e in events if "lr" in e]

    figure, axes = plt.subplots(figsize=(7, 4))
    if train:
        axes.plot(*zip(*train), label="train (logged)", alpha=0.4)
    if evals:
        steps, train_loss, val_loss = zip(*evals)
        axes.plot(steps, train_loss, "o-", label="train (eval)")
        axes.plot(steps, val_loss, "o-", label="val (eval)")
    axes.set(xlabel="step", ylabel="loss (nats/token)", title=f"{name}: loss")
    axes.legend()
    figure.tight_layout()
    loss_png = folder / "loss.png"
    figure.savefig(loss_png, dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 3))
    curve = lr_curve(config)
    if curve:
        axes.plot(*zip(*curve), label="schedule (every step)")
    if rates:
        axes.plot(*zip(*rates), ".", label="logged")
    if curve or rates:
        axes.legend()
    axes.set(xlabel="step", ylabel="learning rate", title=f"{name}: learning rate")
    figure.tight_layout()
    lr_png = folder / "lr.png"
    figure.savefig(lr_png, dpi=110)
    plt.close(figure)
    return [loss_png, lr_png]


def lr_curve(config: dict) -> list[tuple[int, float]]:
    """(step, learning rate after that many optimizer steps) for every step of the run, as logged at a step."""
    from ftdist.config import load_config
    from ftdist.errors import FtdistError
    from ftdist.training.optim import lr_multiplier

    if not config:
        return []
    try:
        run = load_config(config)
    except FtdistError:
        return []
    factor = lr_multiplier(run.schedule, run.train.max_steps)
    return [(step, run.optim.lr * factor(step)) for step in range(run.train.max_steps + 1)]


def _run_config(run_dir: Path) -> dict:
    path = RunFolder(run_dir).config
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
