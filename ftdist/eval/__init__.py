"""Evaluation: tasks (perplexity, qa, sql, questions, score) behind one interface (`ftdist.eval.tasks`), a
runner that batches and splits them across ranks (`runner`), results on disk (`results`), the base-vs-tuned
hook the trainer calls (`hook`) and the comparison report (`report`).

The config names the scorers (`ftdist.config.eval.SCORING_NAMES`); `normalize.SCORERS` implements them.
"""
