"""The kernel setting a test run asks for is the one torch uses (issue 20).

``make other-kernels`` reruns the numeric tests under ``ATEN_CPU_CAPABILITY=default``; if torch
ignored the variable, that pass would silently repeat the native one.
"""

import os
import subprocess
import sys

import torch


def capability_under(value: str) -> str:
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": value}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_portable_kernels_can_be_selected():
    assert capability_under("default") == "DEFAULT"


def test_requested_cpu_capability_is_in_effect():
    wanted = os.environ.get("ATEN_CPU_CAPABILITY")
    if wanted:
        assert torch.backends.cpu.get_cpu_capability() == wanted.upper()
