"""Playbooks (应急预案, PRODUCT §11): the built-in ones, the site's overrides, resolved and checked.

A playbook says what the building team does after a trigger alarm, step by step, each within a limit.
Built-ins are data files beside the templates (`config/playbooks/*.yaml`); the site file's
`playbooks:` overrides them by id (only the keys it sets) or adds new ones. `resolve_playbooks`
reports every problem with its file:line:field through the resolver's `error` callback.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pydantic import ValidationError

from config.errors import Loc, SiteError
from config.models import JOIN_WITHIN, PlaybookSpec, Role, Text, TriggerSpec
from config.validation import issues_from_validation
from config.yamlsource import load_yaml


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    text: Text
    within: float | None
    role: Role = "engineer"


@dataclass(frozen=True, slots=True)
class Playbook:
    """A resolved playbook: what the incident state machine works from."""

    id: str
    title: Text
    rules: frozenset[str]
    alarms: frozenset[str]
    steps: tuple[Step, ...]
    join_within: float = JOIN_WITHIN

    def triggered_by(self, alarm_id: str, rule: str) -> bool:
        return alarm_id in self.alarms or rule in self.rules


def builtin_names() -> list[str]:
    folder = resources.files("config") / "playbooks"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


@cache
def builtin_playbooks() -> dict[str, PlaybookSpec]:
    """Every built-in playbook, validated (a broken file names its line).

    Raises:
        SiteError: a built-in file is invalid.
    """
    specs: dict[str, PlaybookSpec] = {}
    for name in builtin_names():
        resource = resources.files("config") / "playbooks" / f"{name}.yaml"
        doc = load_yaml(f"config/playbooks/{name}.yaml", resource.read_text(encoding="utf-8"))
        try:
            specs[name] = PlaybookSpec.model_validate(doc.data)
        except ValidationError as exc:
            raise SiteError(issues_from_validation(doc, exc)) from exc
    return specs


def resolve_playbooks(
    site_specs: list[PlaybookSpec],
    rule_ids: Iterable[str],
    alarm_ids: Iterable[str],
    error: Callable[[Loc, str], None],
) -> dict[str, Playbook]:
    """Built-ins merged with the site's `playbooks:`; each problem reported at its location.

    Args:
        site_specs: the site file's `playbooks:` entries.
        rule_ids: every rule id of the site's devices (a site trigger must name one).
        alarm_ids: every alarm id (`device.rule`) of the site.
        error: called with (location, message) for each problem.
    """
    known_rules, known_alarms = set(rule_ids), set(alarm_ids)
    merged: dict[str, PlaybookSpec] = dict(builtin_playbooks())
    seen: set[str] = set()
    for i, spec in enumerate(site_specs):
        here: Loc = ("playbooks", i)
        if spec.id in seen:
            error((*here, "id"), f"playbook {spec.id!r} is defined twice")
            continue
        seen.add(spec.id)
        base = merged.get(spec.id)
        if base is None and (spec.trigger is None or not spec.steps):
            missing = "trigger" if spec.trigger is None else "steps"
            error(
                (*here, missing),
                f"a new playbook needs trigger: and steps: (no built-in {spec.id!r})",
            )
            continue
        if spec.trigger is not None:
            _check_trigger(spec.trigger, known_rules, known_alarms, (*here, "trigger"), error)
        if spec.steps is not None:
            ids: set[str] = set()
            for j, step in enumerate(spec.steps):
                if step.id in ids:
                    error((*here, "steps", j, "id"), f"step {step.id!r} is listed twice")
                ids.add(step.id)
        merged[spec.id] = (
            spec
            if base is None
            else base.model_copy(update={k: getattr(spec, k) for k in spec.model_fields_set})
        )
    playbooks: dict[str, Playbook] = {}
    for pid, spec in merged.items():
        if not spec.enabled or spec.trigger is None or not spec.steps:
            continue
        playbooks[pid] = Playbook(
            id=pid,
            title=spec.title or Text(zh=pid, en=pid),
            rules=frozenset(spec.trigger.rules),
            alarms=frozenset(spec.trigger.alarms),
            steps=tuple(Step(s.id, s.text, s.within, s.role) for s in spec.steps),
            join_within=spec.join_within,
        )
    return playbooks


def _check_trigger(
    trigger: TriggerSpec,
    rules: set[str],
    alarms: set[str],
    here: Loc,
    error: Callable[[Loc, str], None],
) -> None:
    if not trigger.rules and not trigger.alarms:
        error(here, "a trigger names rules: or alarms:")
    for j, rule in enumerate(trigger.rules):
        if rule not in rules:
            error((*here, "rules", j), f"no device has rule {rule!r}{_did_you_mean(rule, rules)}")
    for j, alarm in enumerate(trigger.alarms):
        if alarm not in alarms:
            error((*here, "alarms", j), f"unknown alarm {alarm!r}{_did_you_mean(alarm, alarms)}")


def _did_you_mean(word: str, choices: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
