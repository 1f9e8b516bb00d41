"""CI runs exactly the README's test command (`.ci/run` calls `scripts/test.sh`).

What each set-up mode installs: tests/integration/cli/test_setup_scripts.py.
"""

from __future__ import annotations

import re

from tests.support import ROOT


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    assert "./scripts/demo.sh\n" in blocks and "./scripts/test.sh\n" in blocks
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line and not line.startswith(("#", "set ", "cd "))]  # fmt: skip
    assert commands == ["exec bash scripts/test.sh"]
