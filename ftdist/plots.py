"""PNG plots of a finished run, drawn from its `metrics.jsonl`."""

from __future__ import annotations

from pathlib import Path

from ftdist.tracking import read_metrics


def write_plots(run_dir: Path) -> list[Path]:
    """`plots/loss.png` (train loss, eval train/val loss) and `plots/lr.png`. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters
    import matplotlib.pyplot as plt

    events = read_metrics(run_dir)
    folder = Path(run_dir) / "plots"
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
    axes.set(xlabel="step", ylabel="loss (nats/token)", title="Loss")
    axes.legend()
    figure.tight_layout()
    loss_png = folder / "loss.png"
    figure.savefig(loss_png, dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 3))
    if rates:
        axes.plot(*zip(*rates))
    axes.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    figure.tight_layout()
    lr_png = folder / "lr.png"
    figure.savefig(lr_png, dpi=110)
    plt.close(figure)
    return [loss_png, lr_png]
