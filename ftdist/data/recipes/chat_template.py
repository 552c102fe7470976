"""Conversations through a chat template, shared by the `chat` and `preference` recipes: checking the messages
of a row, rendering them, and cutting the rendering into masked and trained segments.

The mask comes from rendering growing prefixes of the conversation: the text up to an assistant turn's
generation prompt is masked, the text that turn adds is trained. This works for any template whose renderings
of a conversation's prefixes are prefixes of each other (ChatML, Llama, Gemma, ... all are); one that is not
is reported instead of masked wrongly.
"""

from __future__ import annotations

from jinja2.sandbox import ImmutableSandboxedEnvironment

from ftdist.config.data import DataConfig
from ftdist.data.tables import Table
from ftdist.errors import DataError

ROLES = ("system", "user", "assistant")
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def renderer(config: DataConfig, tokenizer):
    """`render(messages, add_generation_prompt=False) -> str` with `data.chat.template`, else the tokenizer's
    own template, else ChatML."""
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


def checked_messages(
    table: Table, index: int, value, role_map: dict[str, str], need_assistant: bool = True, column: str = "messages"
) -> list[dict]:
    """`value` as `[{role, content}]` with roles mapped by `data.chat.role_map`; errors name the row.

    `need_assistant`: a conversation without an assistant turn is an error (nothing in it would train)."""
    where = table.where(index)
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{where}: the {column} column must be a non-empty list of {{role, content}}; got {value!r:.80}"
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
    if need_assistant and not any(m["role"] == "assistant" for m in messages):
        roles = ", ".join(str(m.get("role", m.get("from"))) for m in value)
        raise DataError(
            f"{where}: the {'conversation' if column == 'messages' else column} has no assistant turn (roles: "
            f"{roles}), so nothing in it would train; fix its roles (data.chat.role_map) or remove it"
        )
    return messages


def turn_segments(messages: list[dict], render, where: str, trained_from: int = 0) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, trained) segments up to its last assistant turn: each assistant
    turn from message `trained_from` on trains; everything else (earlier assistant turns too) is masked."""
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
        segments += [(prompt[len(done) :], False), (full[len(prompt) :], i >= trained_from)]
        done = full
    return segments
