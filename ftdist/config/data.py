"""`data:` what the model reads, and how it is cut into training sequences.

One section for every recipe; options that only one recipe reads live in a small subsection named after it
(`data.chat`, `data.qa`, `data.keywords`, `data.code`), so the top level stays short.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from ftdist.config.base import Section

Recipe = Literal["stream", "text", "instruction", "chat", "qa", "keywords", "headings", "code", "preference"]

# The columns each table-reading recipe needs, keyed by the recipe's own name for them (see `data.columns`).
RECIPE_COLUMNS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "instruction": ("instruction", "input", "output"),
    "chat": ("messages",),
    "qa": ("question", "answer"),
    "keywords": ("text",),
    "preference": ("prompt", "chosen", "rejected", "completion", "label"),
}

ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_TEMPLATE_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


class ChatOptions(Section):
    """`data.chat`: how conversations are read and rendered."""

    role_map: dict[str, str] = Field(default_factory=dict)
    """Your role names -> `system`/`user`/`assistant`, e.g. `{human: user, bot: assistant}`."""
    template: str | None = None
    """A Jinja chat template; defaults to the tokenizer's own, or ChatML when the tokenizer has none."""


class QAOptions(Section):
    """`data.qa`: question/answer pairs, optionally after a fixed few-shot prefix."""

    template: str = "Question: {question}\nAnswer: "
    """The prompt (not trained on); the answer follows it."""
    few_shot: list[dict[str, str]] = Field(default_factory=list)
    """Worked examples `{question, answer}` rendered with `template` before every question (masked)."""


class KeywordOptions(Section):
    """`data.keywords`: paragraphs paired with their RAKE keywords (built-in stopword list, no download)."""

    top_k: PositiveInt = 5
    """Keywords kept per paragraph, best-scored first."""
    min_words: PositiveInt = 8
    """Paragraphs with fewer words are skipped (too short to summarise)."""
    template: str = "Extract the keywords.\n\n{text}\n\nKeywords: "
    """The prompt (not trained on); the comma-separated keywords follow it."""


class CodeOptions(Section):
    """`data.code`: a source tree as function/docstring pairs or as raw text."""

    mode: Literal["functions", "raw"] = "functions"
    """`functions`: each documented function, prompted by its docstring or leading comments; `raw`: every
    file's text for next-token training."""
    extensions: list[str] = Field(default_factory=lambda: [".py", ".java"])
    """File endings read from the tree."""
    template: str = "{language} function `{name}`: {doc}\n"
    """The prompt (not trained on); the function's source follows it."""


class SourceConfig(Section):
    """One entry of `data.sources`: a data set, the recipe that reads it, and its share of the training rows."""

    path: str
    """A file, a folder, `builtin:NAME` or a hub id, as `data.path`."""
    recipe: Recipe | None = None
    """How its records become examples (as `data.recipe`); default: `data.recipe`."""
    weight: PositiveFloat = 1.0
    """Its share of the training rows, relative to the other sources' weights (0.8 and 0.2: 80% and 20%)."""


class DataConfig(Section):
    """Training data. Paths are relative to the working directory; `builtin:NAME` names a file shipped in ftdist."""

    recipe: Recipe = "stream"
    """How records become training examples:
    `stream`: one text file as a single token stream sampled in random windows (the tiny SQL GPT protocol);
    `text`: documents chunked by tokens and packed to full sequences; `instruction`: Alpaca
    instruction/input/output, only the output trains; `chat`: conversations, only assistant turns train;
    `qa`: question/answer pairs; `keywords`: paragraphs -> RAKE keywords; `headings`: Markdown sections with
    their heading path as the prompt; `code`: functions paired with their docstrings, or raw source;
    `preference`: prompt/chosen/rejected pairs (DPO, reward models; also the HH-RLHF layout of two whole
    dialogues) or prompt/completion/label examples (KTO), each row one unpacked sequence per response."""
    path: str = "builtin:tiny_sql_corpus.txt"
    """A file, a folder of files (json/jsonl/csv/parquet/txt/md, or source code), `builtin:NAME`, or a hub id."""
    seq_len: PositiveInt = 32
    """Tokens per training sequence (the context length)."""
    val_fraction: float = 0.1
    """Share held out for validation: the last part of the stream (`stream`), else a seeded share of examples."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Recipe field -> column in your data, e.g. `{output: response}`. Fields: text (text, keywords);
    instruction, input, output (instruction); messages (chat); question, answer (qa); prompt, chosen, rejected,
    completion, label (preference)."""
    template: str = ALPACA_TEMPLATE
    """`instruction` prompt with `{instruction}` and `{input}` (not trained on); the output follows it."""
    template_no_input: str = ALPACA_TEMPLATE_NO_INPUT
    """`instruction` prompt used when a record's input is empty."""
    chunk_overlap: NonNegativeInt = 0
    """`text`/`code raw`: tokens each chunk repeats from the previous one, as context (not trained twice)."""
    truncation: Literal["error", "drop", "truncate"] = "error"
    """An example longer than seq_len + 1 tokens: `error` stops with its file and row; `drop` skips it;
    `truncate` cuts it (dropped if no trained token is left). Dropped and cut examples are counted in the card."""
    packing: bool = True
    """Put several examples into one sequence (attention stays within each example); off pads each alone.
    Preference rows are never packed: each response is a sequence of its own."""
    add_eos: bool = True
    """End every response (and every document) with the tokenizer's EOS token, if it has one."""
    sources: list[SourceConfig] | None = None
    """Several data sets mixed by weight, instead of `data.path`: `[{path, recipe, weight}, ...]`. Each is
    prepared into its own cache; training interleaves their rows in exact proportion to the weights (a source
    that runs out starts over in a new shuffled order). The other `data:` settings apply to every source."""
    pack_window: int = Field(default=2048, ge=2)
    """Examples packed together at a time: memory stays bounded whatever the corpus size; each window can
    leave one part-filled row (the card shows the padding this costs)."""
    unit_mb: PositiveFloat = 256.0
    """Size of the units of work `ftdist prepare` cuts the input into (MB, 10**6 bytes): consecutive files are
    grouped up to this size; a larger .txt/.md file of the `text` recipe is cut at the next line end after each
    unit_mb, a larger table (json/jsonl/csv/parquet) into equal row ranges. Each unit is tokenized, split and
    packed as a stream of its own, and the ranks of a multi-rank prepare share the units out, so the result does
    not depend on how many ranks built it. A set smaller than one unit is prepared exactly as one stream. Part
    of the data fingerprint for sets larger than one unit."""
    workers: PositiveInt | None = None
    """Tokenizer processes for `ftdist prepare`; default: the CPUs this process may use (as for threads)."""
    cache_dir: str = ".ftdist_cache/data"
    """Where `ftdist prepare` keeps tokenized, packed data, keyed by a fingerprint of data, tokenizer and settings."""

    chat: ChatOptions = Field(default_factory=ChatOptions)
    qa: QAOptions = Field(default_factory=QAOptions)
    keywords: KeywordOptions = Field(default_factory=KeywordOptions)
    code: CodeOptions = Field(default_factory=CodeOptions)

    @field_validator("val_fraction")
    @classmethod
    def _fraction_in_range(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError("data.val_fraction must be between 0 and 1 (exclusive), e.g. 0.1")
        return value

    @model_validator(mode="after")
    def _columns_known(self) -> DataConfig:
        known = RECIPE_COLUMNS.get(self.recipe, ())
        unknown = sorted(set(self.columns) - set(known))
        if unknown:
            fields = ", ".join(known) if known else "none (this recipe reads files, not columns)"
            raise ValueError(
                f"data.columns has {', '.join(unknown)}, which recipe {self.recipe} does not read; "
                f"its fields are: {fields}. Write data.columns as {{field: your_column}}"
            )
        return self

    @model_validator(mode="after")
    def _overlap_below_length(self) -> DataConfig:
        if self.chunk_overlap >= self.seq_len:
            raise ValueError(
                f"data.chunk_overlap={self.chunk_overlap} must be below data.seq_len={self.seq_len}, or no chunk "
                "would hold a new token; lower chunk_overlap (e.g. to seq_len // 8)"
            )
        return self

    @model_validator(mode="after")
    def _templates_have_fields(self) -> DataConfig:
        checks = [
            ("data.template", self.template, "{instruction}"),
            ("data.template_no_input", self.template_no_input, "{instruction}"),
            ("data.qa.template", self.qa.template, "{question}"),
            ("data.keywords.template", self.keywords.template, "{text}"),
        ]
        for key, template, field in checks:
            if field not in template:
                raise ValueError(f"{key} must contain {field}, where the record's value goes; got {template!r}")
        return self

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> DataConfig:
        if self.sources is None:
            return self
        if not self.sources:
            raise ValueError("data.sources is empty; list at least one {path, recipe, weight}, or remove it")
        if "path" in self.model_fields_set:
            raise ValueError(
                "data.path and data.sources are both set; keep one: data.sources for several weighted sets, "
                "or data.path for one"
            )
        for number, source in enumerate(self.sources):
            if (source.recipe or self.recipe) == "preference":
                raise ValueError(
                    f"data.sources[{number}] uses recipe preference, which cannot be mixed yet (mixtures draw "
                    "packed token rows); give preference data as one source with data.path"
                )
            if (source.recipe or self.recipe) == "stream":
                raise ValueError(
                    f"data.sources[{number}] uses recipe stream, which cannot be mixed (it samples raw text at run "
                    "time); give it a prepared recipe such as recipe: text"
                )
        return self

    def column(self, field: str) -> str:
        """The data column that holds the recipe's `field`."""
        return self.columns.get(field, field)
