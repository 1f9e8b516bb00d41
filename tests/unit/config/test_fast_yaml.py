"""The quick YAML path (`config/fastyaml.py`) gives what ruamel's round-trip loader gives.

Differential: for the example site, the golden cases, the built-in templates, generated documents
and hand-edit-like mutations of the example text, the quick path either declines (and ruamel reads
the file as before) or returns the same data — same keys in the same order, same values of the same
types — and the same line for every key and item of the document.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from config.errors import SiteError
from config.fastyaml import load_fast
from config.yamlsource import load_yaml, load_yaml_ruamel
from tests.support import ROOT, examples

FILES = sorted(
    [
        ROOT / "examples" / "riverside.yaml",
        *(ROOT / "tests" / "cases").glob("*/site.yaml"),
        *(ROOT / "config" / "templates").glob("*.yaml"),
    ]
)


def _same(a: Any, b: Any) -> bool:
    """Equal data of the same types (a block scalar is a str subclass in ruamel, a str here)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            type(a) is dict
            and type(b) is dict
            and list(a) == list(b)
            and all(_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list) or isinstance(b, list):
        return (
            type(a) is list
            and type(b) is list
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, str) and isinstance(b, str):
        return str(a) == str(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b) and repr(a) == repr(b)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
            found.append((*here, key, "not-there"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*here, i))
        found.append((*here, len(node)))
    return found


def _agree(text: str) -> bool:
    """Check the quick path against ruamel on `text`; True when the quick path took it."""
    fast = load_fast(text)
    if fast is None:
        return False
    slow = load_yaml_ruamel("t.yaml", text)  # the quick path must not take text ruamel refuses
    data = {} if fast[0] is None else fast[0]
    assert _same(data, slow.data), (data, slow.data)
    for loc in _paths(slow.data):
        assert fast[1].line_of(loc) == slow.line_of(loc), loc
    return True


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_quick_path_reads_every_shipped_file_as_ruamel_does(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        load_yaml_ruamel(str(path), text)
    except SiteError:
        assert load_fast(text) is None  # the golden YAML-error case keeps ruamel's wording
        return
    assert _agree(text)


def test_a_file_saved_with_windows_line_ends_takes_the_quick_path() -> None:
    text = (ROOT / "examples" / "riverside.yaml").read_text(encoding="utf-8")
    assert _agree(text.replace("\n", "\r\n"))
    assert _agree('a: "two\r\n  lines"\r\nb: |\r\n  x\r\n  y\r\nc: >\r\n  p\r\n  q\r\n')


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",  # anchors and aliases
        "a: !!str 5\n",  # explicit tags
        "a: ! 5\n",
        "base: &b {x: 1}\nc:\n  <<: *b\n",  # merge keys
        "%YAML 1.1\n---\na: yes\n",  # directives
        "a: 1\na: 2\n",  # duplicate keys
        "a: [1\n",  # not YAML
        "? [a, b]\n: 1\n",  # a complex key
        "a: 1\n---\nb: 2\n",  # two documents
        "a: 2024-13-45\n",  # values the constructor refuses
        "a: 2024-02-30\n",
        "a: " + "1" * 5000 + "\n",
    ],
)
def test_what_the_quick_path_does_not_reproduce_goes_to_ruamel(text: str) -> None:
    assert load_fast(text) is None
    try:
        expected: Any = load_yaml_ruamel("t.yaml", text).data
    except SiteError as exc:
        expected = [str(issue) for issue in exc.issues]
    try:
        got: Any = load_yaml("t.yaml", text).data
    except SiteError as exc:
        got = [str(issue) for issue in exc.issues]
    assert repr(got) == repr(expected)  # ruamel keeps a tagged scalar as an object of its own


@pytest.mark.parametrize(
    "value",
    ["yes", "no", "on", "Off", "y", "010", "0o10", "0x1F", "0b101", "1_000", "1e3", "1.50",
     "-.5", ".inf", "-.Inf", ".NaN", "~", "null", "Null", "", "true", "FALSE", "2024-01-01",
     "2001-12-14t21:59:43.10-05:00", "1:30", "12:30:00", "+12", "-0", "0.", "1.2.3",
     "500ms", "127.0.0.1", "'quoted'", '"dq\\tx"', "[1, yes, ~]", "{k: 010}"],
)  # fmt: skip
def test_scalars_follow_yaml_1_2_as_ruamel_reads_them(value: str) -> None:
    as_key = f"{value}: 1\n" if value and value[0] not in "[{" else ""
    assert _agree(f"a: {value}\nb:\n  - {value}\n  - x: {value}\n{as_key}")


@pytest.mark.parametrize("style", ["|", "|-", "|+", ">", ">-", "|2"])
def test_block_scalars_read_the_same(style: str) -> None:
    assert _agree(f"a: {style}\n  one\n   two\n\n  three\n\nb:\n  - {style}\n    x\n  - y\n")


def test_a_value_key_goes_to_ruamel() -> None:
    assert load_fast("a: =\n") is None


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
    st.sampled_from(["yes", "No", "010", "0x1f", "1e3", "~", "", "2024-01-01", "1:30", "a: b",
                     "- x", "#c", "{x}", "a\nb", " lead", "trail ", "\u2028", "\x85", "é中"]),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(0, 9), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from([None, True, False]), st.sampled_from(["safe", "rt"]))
def test_generated_documents_read_the_same(tree: Any, flow: bool | None, typ: str) -> None:
    out = io.StringIO()
    dumper = YAML(typ=typ, pure=True)
    dumper.default_flow_style = flow
    try:
        dumper.dump(tree, out)
    except Exception:
        return  # not representable
    _agree(out.getvalue())


EXAMPLE_TEXT = (ROOT / "examples" / "riverside.yaml").read_text(encoding="utf-8")


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(EXAMPLE_TEXT)),
            st.integers(0, 3),
            st.sampled_from([":", " ", "\n", "-", "'", '"', "#", "[", "]", "{", "}", ",", "?",
                             "|", ">", "  ", "\n  ", "x", "1", "~", "\r\n", "\ufeff", "é"]),
        ),
        min_size=1,
        max_size=3,
    )
)  # fmt: skip
def test_hand_edits_of_the_example_read_the_same_or_go_to_ruamel(
    edits: list[tuple[int, int, str]],
) -> None:
    text = EXAMPLE_TEXT
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut :]
    _agree(text)
