"""Set-up that matches the job (issue 16.2): the demo installs the service, the tests the test bed.

`scripts/setup.sh MODE --list` prints what a mode installs without installing anything, so the
split is checked here; the README's two commands and CI's are the scripts that use each mode.
"""

from __future__ import annotations

import re
import subprocess

from tests.support import ROOT

TEST_BED_ONLY = {"chromium", "fonts-wqy-zenhei", "victoria-metrics", "socat", "mbpoll"}


def listed(mode: str) -> tuple[set[str], str]:
    out = subprocess.run(
        ["bash", "scripts/setup.sh", mode, "--list"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    apt = re.search(r"^apt: (.*)$", out, re.M)
    pip = re.search(r"^pip: (.*)$", out, re.M)
    assert apt and pip, out
    return set(apt.group(1).split()), pip.group(1)


def test_the_service_needs_no_test_bed() -> None:
    apt, pip = listed("service")
    assert "mosquitto" in apt
    assert not apt & TEST_BED_ONLY, apt
    assert pip == "-e ."


def test_the_test_bed_has_everything_the_tests_drive() -> None:
    apt, pip = listed("test")
    assert TEST_BED_ONLY | {"mosquitto"} <= apt
    assert pip == "-e .[test]"


def test_each_script_sets_up_for_its_job() -> None:
    def setup_line(script: str) -> str:
        text = (ROOT / "scripts" / script).read_text()
        (line,) = [x for x in text.splitlines() if x.startswith("bash scripts/setup.sh")]
        return line.split("#")[0].split()[2]

    assert setup_line("demo.sh") == "service"
    assert setup_line("test.sh") == "test"
    result = subprocess.run(["bash", "scripts/setup.sh", "bogus"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 2 and "usage" in result.stderr
