"""The report's pictures (matplotlib, Agg): loss and LR curves overlaid, and per-question agreement.

Each figure comes back as PNG bytes; the HTML embeds them as base64 and the Markdown links the files.
"""

from __future__ import annotations

import io

from ftdist.eval.report.sources import Model


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    _pyplot().close(figure)
    return buffer.getvalue()


def curves(models: list[Model]) -> bytes | None:
    """Train loss (logged and eval val loss) and learning rate of every run, overlaid; None without runs."""
    runs = [m for m in models if m.events]
    if not runs:
        return None
    plt = _pyplot()
    figure, (loss_axes, lr_axes) = plt.subplots(1, 2, figsize=(11, 3.8))
    for model in runs:
        train = [(e["step"], e["loss"]) for e in model.events if "loss" in e]
        val = [(e["step"], e["val_loss"]) for e in model.events if "val_loss" in e]
        rates = [(e["step"], e["lr"]) for e in model.events if "lr" in e]
        line = None
        if train:
            (line,) = loss_axes.plot(*zip(*train), label=f"{model.name} train", alpha=0.8)
        if val:
            color = line.get_color() if line is not None else None
            loss_axes.plot(*zip(*val), "o--", color=color, label=f"{model.name} val")
        if rates:
            lr_axes.plot(*zip(*rates), label=model.name, color=line.get_color() if line is not None else None)
    loss_axes.set(xlabel="step", ylabel="loss (nats/token)", title="Loss")
    lr_axes.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    loss_axes.legend(fontsize=8)
    lr_axes.legend(fontsize=8)
    return _png(figure)


def regions(sets: dict[str, set]) -> dict[tuple[str, ...], int]:
    """How many items are right for exactly each combination of models (the Venn diagram's regions)."""
    names = list(sets)
    everything = set().union(*sets.values())
    counts: dict[tuple[str, ...], int] = {}
    for item in everything:
        key = tuple(name for name in names if item in sets[name])
        counts[key] = counts.get(key, 0) + 1
    return counts


def agreement(label: str, sets: dict[str, set], total: int) -> bytes:
    """A Venn diagram for 2 or 3 models (circles with region counts), an intersection bar chart otherwise."""
    plt = _pyplot()
    names = list(sets)
    counts = regions(sets)
    if len(names) in (2, 3):
        from matplotlib.patches import Circle

        figure, axes = plt.subplots(figsize=(6, 4.6))
        centres = [(-0.6, 0.3), (0.6, 0.3), (0.0, -0.7)][: len(names)]
        if len(names) == 2:
            centres = [(-0.55, 0.0), (0.55, 0.0)]
        colours = ["#1f77b4", "#ff7f0e", "#2ca02c"]
        for (x, y), name, colour in zip(centres, names, colours):
            axes.add_patch(Circle((x, y), 1.0, alpha=0.28, color=colour))
            axes.text(x * 1.9, y * 1.9 + (0.15 if y >= 0 else -0.15), f"{name}\n{len(sets[name])} right",
                      ha="center", va="center", fontsize=9, weight="bold")  # fmt: skip
        for key, count in counts.items():
            members = [centres[names.index(n)] for n in key]
            x = sum(p[0] for p in members) / len(members)
            y = sum(p[1] for p in members) / len(members)
            if len(members) == 1:  # push single-model regions away from the middle
                x, y = x * 1.35, y * 1.35
            axes.text(x, y, str(count), ha="center", va="center", fontsize=12)
        none = total - len(set().union(*sets.values()))
        axes.text(0, -2.05 if len(names) == 3 else -1.35, f"right for none: {none} of {total}", ha="center")
        axes.set_xlim(-2.4, 2.4)
        axes.set_ylim(-2.2 if len(names) == 3 else -1.5, 1.6)
        axes.set_aspect("equal")
        axes.axis("off")
        axes.set_title(f"{label}: questions answered correctly")
        return _png(figure)
    figure, axes = plt.subplots(figsize=(8, 3.5))
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    axes.bar(range(len(ordered)), [c for _, c in ordered])
    axes.set_xticks(range(len(ordered)), [" & ".join(k) for k, _ in ordered], rotation=30, ha="right", fontsize=7)
    axes.set(ylabel="questions", title=f"{label}: right for exactly these models")
    return _png(figure)
