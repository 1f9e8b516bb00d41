"""The site-file examples of the README's alarm section and of docs/alarms.md load as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.site import load_site
from tests.support import ROOT

HEAD = (
    "site: {id: docs}\n"
    "modbus: [{id: b, transport: tcp, host: 127.0.0.1, port: 5020}]\n"
    "devices: [{id: m, template: energy_meter, modbus: {bus: b, unit: 1}}]\n"
)


def yaml_blocks(text: str) -> list[str]:
    return [part.split("```")[0] for part in text.split("```yaml")[1:]]


@pytest.mark.parametrize(("doc", "section"), [("README.md", "## Alarms"), ("docs/alarms.md", "")])
def test_alarm_examples_load(doc: str, section: str, tmp_path: Path) -> None:
    text = (ROOT / doc).read_text(encoding="utf-8")
    if section:
        text = text.split(section, 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in yaml_blocks(text) if "alarms:" in b or "notify:" in b]
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"{i}.yaml"
        path.write_text(HEAD + block, encoding="utf-8")
        site = load_site(path)
        assert site.file.notify.channels or site.file.alarms.flood.alarms == 10
