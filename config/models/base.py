"""What every part of the site file builds on: ids, durations, strict models, bilingual texts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    model_validator,
)

from ground.durations import parse_duration

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
"""Ids end up in MQTT topics, SQL rows and URLs: letters, digits, `_` and `-`, starting with a letter."""

POINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Point names are identifiers so that rule expressions can name them."""


def _seconds(value: Any) -> float:
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_seconds), PlainSerializer(lambda s: s)]
"""Seconds, written in the file as `500ms`, `10s`, `5m`, `2h`, `15d` (or a bare number of seconds)."""


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a site file must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in both console languages. A plain string in the file is used for both."""

    zh: str
    en: str

    @classmethod
    def split(cls, text: str) -> Text:
        """A site file's `"中文 / English"` (names, locations) as a `Text`; without " / ", both."""
        zh, sep, en = text.partition(" / ")
        return cls(zh=zh.strip(), en=en.strip()) if sep else cls(zh=text, en=text)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"zh": value, "en": value}
        return value

    def in_locale(self, locale: str) -> str:
        return self.en if locale.lower().startswith("en") else self.zh


Priority = Literal["critical", "high", "medium", "low"]
Urgency = Literal["emergency", "urgent", "normal", "low"]
