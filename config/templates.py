"""The built-in equipment templates (PRODUCT §3), loaded from the YAML files beside this module.

Templates are data: adding an equipment kind is adding a file, never a code path.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from pydantic import ValidationError

from config.errors import SiteError
from config.models import Template
from config.validation import issues_from_validation
from config.yamlsource import load_yaml


def template_names() -> list[str]:
    """Ids of every built-in template, sorted."""
    folder = resources.files("config") / "templates"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


@cache
def load_template(name: str) -> Template:
    """The template `name`, validated like a site file (a broken template names its line).

    Raises:
        KeyError: there is no such template.
        SiteError: the template file is invalid.
    """
    if name not in template_names():
        raise KeyError(name)
    resource = resources.files("config") / "templates" / f"{name}.yaml"
    doc = load_yaml(f"config/templates/{name}.yaml", resource.read_text(encoding="utf-8"))
    try:
        return Template.model_validate(doc.data)
    except ValidationError as exc:
        raise SiteError(issues_from_validation(doc, exc)) from exc
