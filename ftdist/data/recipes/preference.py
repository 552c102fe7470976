"""`preference`: records that say which response is better (DPO, reward models) or whether one is good (KTO).

Three layouts, told apart by the columns present (names mappable with `data.columns`):
- pairs: `prompt`, `chosen`, `rejected`;
- HH-RLHF: `chosen` and `rejected` only (or an empty `prompt`), two whole dialogues that share everything up to
  their last assistant turn. Text in the Anthropic format is split after its last "\\n\\nAssistant:"; message
  lists before their last assistant message;
- unpaired (KTO): `prompt`, `completion`, `label` (true/false, or 1/0).

Each value is plain text, or a list of `{role, content}` messages rendered with the chat template
(`data.chat`), as the `chat` recipe renders them. When any field of a row is a message list, a plain-text
prompt is taken as one user message and a plain-text response as one assistant message. The prompt (with
the template's generation prompt) is masked; the response's assistant turns train.
"""

from __future__ import annotations

from collections.abc import Iterator

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import PreferenceExample
from ftdist.data.recipes.chat_template import checked_messages, renderer, turn_segments
from ftdist.data.tables import Table, load_tables
from ftdist.errors import DataError

KIND = "preference"
HH_ASSISTANT = "\n\nAssistant:"
LABELS = {"true": 1, "false": 0, "1": 1, "0": 0}


def examples(config: DataConfig, tokenizer=None) -> Iterator[PreferenceExample]:
    render = renderer(config, tokenizer)
    columns = {field: config.column(field) for field in ("prompt", "chosen", "rejected", "completion", "label")}
    first: tuple[str, str] | None = None
    for table in load_tables(config.path):
        unpaired = columns["completion"] in table.columns or columns["label"] in table.columns
        fields = ("prompt", "completion", "label") if unpaired else ("chosen", "rejected")
        for field in fields:
            table.require(field, columns[field])
        if first is None:
            first = (table.name, "unpaired" if unpaired else "pairs")
        elif first[1] != ("unpaired" if unpaired else "pairs"):
            raise DataError(
                f"{table.name} holds {'unpaired' if unpaired else 'pairs'} records but {first[0]} holds {first[1]}; "
                "one data set is either pairs (prompt, chosen, rejected) or unpaired (prompt, completion, label)"
            )
        read = _unpaired if unpaired else _pair
        for index, row in enumerate(table.rows):
            yield read(table, index, row, columns, config, render)


def _pair(table: Table, index: int, row: dict, columns: dict, config: DataConfig, render) -> PreferenceExample:
    where = table.where(index)
    chosen = _response_value(table, index, row, "chosen", columns["chosen"])
    rejected = _response_value(table, index, row, "rejected", columns["rejected"])
    prompt = row.get(columns["prompt"])
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()) or prompt == []:
        prompt, chosen, rejected = _split_dialogues(table, index, chosen, rejected, config)
    if any(isinstance(value, list) for value in (prompt, chosen, rejected)):
        text, responses = _chat(table, index, prompt, [("chosen", chosen), ("rejected", rejected)], config, render)
        eos = False
    else:
        text, responses, eos = (
            _text(table, index, prompt, "prompt", columns),
            [[(chosen, True)], [(rejected, True)]],
            True,
        )
    if responses[0] == responses[1]:
        raise DataError(
            f"{where}: chosen and rejected are identical, so the pair prefers nothing; fix one of them or remove "
            "the row"
        )
    return PreferenceExample(text, responses, where, eos=eos)


def _unpaired(table: Table, index: int, row: dict, columns: dict, config: DataConfig, render) -> PreferenceExample:
    where = table.where(index)
    completion = _response_value(table, index, row, "completion", columns["completion"])
    desirable = _label(table, index, row.get(columns["label"]), columns["label"])
    prompt = row.get(columns["prompt"])
    if isinstance(prompt, list) or isinstance(completion, list):
        text, responses = _chat(table, index, prompt, [("completion", completion)], config, render)
        return PreferenceExample(text, responses, where, desirable, eos=False)
    text = _text(table, index, prompt, "prompt", columns)
    return PreferenceExample(text, [[(completion, True)]], where, desirable)


def _response_value(table: Table, index: int, row: dict, field: str, column: str):
    """The response in `row[column]` (text or messages); a missing or empty one is an error naming the row."""
    value = row.get(column)
    if value is None:
        raise DataError(
            f"{table.where(index)}: the row has no {field} (column {column!r}, data.columns.{field}); every "
            f"{'example' if field == 'completion' else 'pair'} needs one: fill it in or remove the row"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not value.strip() or value == []:
        raise DataError(
            f"{table.where(index)}: the {field} response (column {column!r}) is empty, so it has nothing to "
            "train on; write the response or remove the row"
        )
    if not isinstance(value, str | list):
        raise DataError(
            f"{table.where(index)}: column {column!r} (data.columns.{field}) holds a {type(value).__name__}, not "
            "text or a list of {role, content} messages"
        )
    return value


def _text(table: Table, index: int, value, field: str, columns: dict) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(
            f"{table.where(index)}: the {field} (column {columns[field]!r}) is empty; write it, or remove the row"
        )
    if not isinstance(value, str):
        raise DataError(f"{table.where(index)}: column {columns[field]!r} holds a {type(value).__name__}, not text")
    return value


def _label(table: Table, index: int, value, column: str) -> int:
    """1 (desirable) or 0 from a bool, 1/0, or "true"/"false"."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in LABELS:
        return LABELS[value.strip().lower()]
    raise DataError(
        f"{table.where(index)}: label {value!r} (column {column!r}) is not true or false; write true or false "
        "(or 1 or 0) for whether the completion is desirable"
    )


def _split_dialogues(table: Table, index: int, chosen, rejected, config: DataConfig) -> tuple:
    """HH-RLHF: (prompt, chosen response, rejected response) from two whole dialogues, split at the last
    assistant turn; the two prompts must be the same."""
    where = table.where(index)
    if isinstance(chosen, str) and isinstance(rejected, str):
        parts = [_split_text(where, field, text) for field, text in (("chosen", chosen), ("rejected", rejected))]
    elif isinstance(chosen, list) and isinstance(rejected, list):
        parts = [
            _split_messages(table, index, field, value, config)
            for field, value in (("chosen", chosen), ("rejected", rejected))
        ]
    else:
        raise DataError(
            f"{where}: without a prompt, chosen and rejected must both be text or both be message lists; "
            "write them the same way"
        )
    (prompt, chosen_response), (other_prompt, rejected_response) = parts
    if prompt != other_prompt:
        raise DataError(
            f"{where}: chosen and rejected differ before their last assistant turn, so they answer different "
            "prompts; give both the same dialogue up to that turn, or add a prompt column"
        )
    return prompt, chosen_response, rejected_response


def _split_text(where: str, field: str, text: str) -> tuple[str, str]:
    cut = text.rfind(HH_ASSISTANT)
    if cut < 0:
        raise DataError(
            f"{where}: the {field} dialogue has no {HH_ASSISTANT!r} turn to split the prompt from the response; "
            "write it in the HH format (\\n\\nHuman: ...\\n\\nAssistant: ...) or add a prompt column"
        )
    cut += len(HH_ASSISTANT)
    if not text[cut:].strip():
        raise DataError(
            f"{where}: the {field} response (after the last {HH_ASSISTANT!r}) is empty, so it has nothing to train "
            "on; write the response or remove the row"
        )
    return text[:cut], text[cut:]


def _split_messages(table: Table, index: int, field: str, value, config: DataConfig) -> tuple[list, list]:
    messages = checked_messages(table, index, value, config.chat.role_map, column=field)
    last = max(i for i, message in enumerate(messages) if message["role"] == "assistant")
    return messages[:last], messages[last:]


def _chat(table: Table, index: int, prompt, responses: list, config: DataConfig, render) -> tuple[str, list]:
    """(masked prompt text, each response's segments) of a chat record, through the chat template."""
    where = table.where(index)
    role_map = config.chat.role_map
    if isinstance(prompt, list) and prompt:
        prompt_messages = checked_messages(table, index, prompt, role_map, need_assistant=False, column="prompt")
    else:
        prompt_messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) and prompt.strip() else []
    text = render(prompt_messages, add_generation_prompt=True)
    out = []
    for field, value in responses:
        if isinstance(value, list):
            messages = checked_messages(table, index, value, role_map, column=field)
        else:
            messages = [{"role": "assistant", "content": value}]
        if messages[0]["role"] != "assistant":
            raise DataError(
                f"{where}: the {field} messages start with a {messages[0]['role']} turn; a response starts with the "
                "assistant turn that answers the prompt (put earlier turns in the prompt)"
            )
        segments = turn_segments(prompt_messages + messages, render, where, trained_from=len(prompt_messages))
        first = next(i for i, (_, trained) in enumerate(segments) if trained)
        if "".join(part for part, _ in segments[:first]) != text:
            raise DataError(
                f"{where}: the chat template renders the prompt differently once the {field} response follows it, "
                "so the response cannot be masked; set data.chat.template to a template that does not (e.g. ChatML)"
            )
        out.append(segments[first:])
    return text, out
