"""Every built-in rule tells the person on duty what to do first, in both languages."""

from __future__ import annotations

import pytest

from config.templates import load_template, template_names


@pytest.mark.parametrize("name", template_names())
def test_every_built_in_rule_has_bilingual_advice(name: str) -> None:
    template = load_template(name)
    missing = [
        r.id for r in template.rules if r.advice is None or not (r.advice.zh and r.advice.en)
    ]
    assert missing == [], f"{name}: rules without advice: {missing}"
