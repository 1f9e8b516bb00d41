"""Site-file errors that name the file, the line and the field: `site.yaml:42: devices[3].modbus.unit: …`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """`('devices', 3, 'modbus', 'unit')` -> `devices[3].modbus.unit`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top)"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One thing wrong with a site file."""

    file: str
    line: int | None  # 1-based; None when the file could not be read at all
    loc: Loc
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        kind = "warning: " if self.warning else ""
        return f"{where}: {format_loc(self.loc)}: {kind}{self.message}"


class SiteError(Exception):
    """The site file has errors; `issues` holds every one of them, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))
