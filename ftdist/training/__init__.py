"""The training loop's parts: the loss, the optimizer and schedule, the finite-loss watch, preemption, progress,
metric tracking, and what a finished run writes (plots, samples). `ftdist/trainer.py` composes them."""
