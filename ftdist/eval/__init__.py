"""Evaluation: tasks (perplexity, qa, sql, questions, score) behind one interface (`ftdist.eval.tasks`), a
runner that batches and splits them across ranks (`runner`), results on disk (`results`), the base-vs-tuned
hook the trainer calls (`hook`) and the comparison report (`report`).

Kept import-light: the config validates scorer names against `ftdist.eval.normalize` without loading torch.
"""
