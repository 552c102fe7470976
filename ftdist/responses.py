"""Where a generated response ends: cut at the first stop string, with a Markdown code block unwrapped.

Shared by generation (which stops a row once its response is final) and by evaluation (which scores the cut
response), so both agree on where an answer ends. Torch-free.
"""

from __future__ import annotations

import re

_OPENING_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n?")


def cut_response(completion: str, stop: list[str]) -> str:
    """The completion without leading whitespace, cut where the first stop string begins. A completion that opens a
    Markdown code block (```sql) is unwrapped first and ends at its closing fence: chat-tuned models (the
    SmolLM2 Instruct base) wrap code in one, and a newline stop would otherwise leave only the fence."""
    text = completion.lstrip()
    opening = _OPENING_FENCE.match(text)
    if opening:
        text = text[opening.end() :].split("```", 1)[0].lstrip()
    found = [text.find(marker) for marker in stop if marker and marker in text]
    return (text[: min(found)] if found else text).strip()


def response_is_final(completion: str, stop: list[str]) -> bool:
    """Whether `cut_response` of this completion can no longer change as tokens are added: a stop string (or the
    closing fence of an opening code block) is in it, and no marker could still complete from a partial match
    that begins before it. Generation of a row ends there."""
    text = completion.lstrip()
    if not text or "```".startswith(text):  # nothing yet, or a code fence may be opening
        return False
    opening = _OPENING_FENCE.match(text)
    body = text[opening.end() :] if opening else text
    markers = [m for m in stop if m] + (["```"] if opening else [])
    found = [body.find(m) for m in markers if m in body]
    if not found:
        return False
    first = min(found)
    return not any(
        marker.startswith(body[start:])
        for marker in markers
        for start in range(max(0, len(body) - len(marker) + 1), first)
    )
