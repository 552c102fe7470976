"""The base class every config section derives from: unknown keys are errors, fields are documented."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class Section(BaseModel):
    """A config section. `extra="forbid"` turns a misspelled key into an error instead of a silent no-op."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


class NamedSection(Section):
    """A section selected by `name`, which may also be written as a bare string: `method: lora`."""

    name: str

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data
