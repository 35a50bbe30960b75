"""A process that imports only part of the code (a `tick` run) still knows every kind."""

from __future__ import annotations

import subprocess
import sys

from tests.support.env import ROOT


def test_a_tick_process_sees_every_case_and_step_kind() -> None:
    probe = (
        "import flows.tick\n"
        "from models.catalogue import CASE_KINDS\n"
        "from models.catalogue import STEP_KINDS, step_kind\n"
        "print(sorted(k.value for k in CASE_KINDS))\n"
        "step_kind('immersion-apply')\n"
        "print(len(STEP_KINDS) >= 10)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    kinds, many_steps = result.stdout.strip().splitlines()
    assert kinds == "['meeting', 'saisine', 'session']"
    assert many_steps == "True"
