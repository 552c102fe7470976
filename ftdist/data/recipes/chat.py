"""`chat`: conversations rendered with a chat template; only the assistant turns train.

The mask comes from rendering growing prefixes of the conversation: the text up to an assistant turn's
generation prompt is masked, the text that turn adds is trained. This works for any template whose renderings
of a conversation's prefixes are prefixes of each other (ChatML, Llama, Gemma, ... all are); one that is not
is reported instead of masked wrongly.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2.sandbox import ImmutableSandboxedEnvironment

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example
from ftdist.data.tables import Table, load_tables
from ftdist.errors import DataError

KIND = "segments"
ROLES = ("system", "user", "assistant")
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example]:
    render = _renderer(config, tokenizer)
    column = config.column("messages")
    for table in load_tables(config.path):
        table.require("messages", column)
        for index, row in enumerate(table.rows):
            messages = _messages(table, index, row.get(column), config.chat.role_map)
            yield Example(_segments(messages, render, table.where(index)), table.where(index), eos=False)


def _renderer(config: DataConfig, tokenizer):
    template = config.chat.template or getattr(tokenizer, "chat_template", None) or CHATML
    # The same sandbox settings transformers uses for apply_chat_template.
    compiled = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
    specials = {
        "bos_token": getattr(tokenizer, "bos_token", None) or "",
        "eos_token": getattr(tokenizer, "eos_token", None) or "",
    }

    def render(messages: list[dict], add_generation_prompt: bool = False) -> str:
        return compiled.render(messages=messages, add_generation_prompt=add_generation_prompt, **specials)

    return render


def _messages(table: Table, index: int, value, role_map: dict[str, str]) -> list[dict]:
    where = table.where(index)
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{where}: the messages column must be a non-empty list of {{role, content}}; got {value!r:.80}"
        )
    messages = []
    for turn, message in enumerate(value, 1):
        if not isinstance(message, dict):
            raise DataError(f"{where}: message {turn} is a {type(message).__name__}, not a {{role, content}} object")
        role = message.get("role", message.get("from"))  # ShareGPT writes from/value
        content = message.get("content", message.get("value"))
        role = role_map.get(role, role)
        if role not in ROLES:
            raise DataError(
                f"{where}: message {turn} has role {role!r}; roles must be {', '.join(ROLES)}. "
                f"Map yours with data.chat.role_map, e.g. {{{role}: user}}"
            )
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{where}: message {turn} ({role}) has no text content")
        messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        roles = ", ".join(str(m.get("role", m.get("from"))) for m in value)
        raise DataError(
            f"{where}: the conversation has no assistant turn (roles: {roles}), so nothing in it would train; "
            "fix its roles (data.chat.role_map) or remove it"
        )
    return messages


def _segments(messages: list[dict], render, where: str) -> list[tuple[str, bool]]:
    segments, done = [], ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(messages[:i], add_generation_prompt=True)
        full = render(messages[: i + 1])
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise DataError(
                f"{where}: the chat template does not render this conversation's turns as prefixes of each other, "
                "so the assistant turns cannot be masked; set data.chat.template to a template that does (e.g. ChatML)"
            )
        segments += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
        done = full
    return segments
