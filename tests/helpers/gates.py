"""Gate files make job ordering deterministic: a job blocks in `wait_gate(GATE)` until the test calls
`open_gate(GATE)`; `append` records the order things ran in, `lines` reads it back."""

from __future__ import annotations

import shlex


def wait_gate(gate) -> str:
    return f"while [ ! -f {shlex.quote(str(gate))} ]; do sleep 0.05; done"


def open_gate(gate) -> None:
    with open(gate, "w"):
        pass


def append(path, text: str) -> str:
    return f"echo {shlex.quote(text)} >> {shlex.quote(str(path))}"


def lines(path) -> list[str]:
    try:
        with open(path) as handle:
            return handle.read().split()
    except FileNotFoundError:
        return []
