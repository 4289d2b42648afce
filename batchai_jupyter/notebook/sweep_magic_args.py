"""What `%%batchai_sweep` reads from its line: parameter expressions and the early termination options."""

from __future__ import annotations

import ast
import re

from ..errors import BatchAIError

# lr=loguniform(1e-4, 1e-1), width=choice(32, 64), x=uniform:0,10 (the form without parentheses needs no quotes)
_EXPRESSION = re.compile(r"^\s*(\w+)\s*=\s*(\w+)\s*(?:\((.*)\)|:(.*))\s*$", re.DOTALL)
_RANGES = {"uniform": ("min", "max"), "loguniform": ("min", "max"), "quniform": ("min", "max", "q")}
_LISTS = ("choice", "grid")


def parse_parameter(text: str) -> tuple[str, dict]:
    """ "lr=loguniform(1e-4, 1e-1)" -> ("lr", {"type": "loguniform", "min": 0.0001, "max": 0.1})."""
    match = _EXPRESSION.match(text)
    hint = "write NAME=TYPE(VALUES), e.g. lr=loguniform(1e-4,1e-1) or width=choice(32,64,128)"
    if not match:
        raise BatchAIError("InvalidArgument", f"--param {text!r}: {hint}")
    name, kind, inside = match.group(1), match.group(2).lower(), match.group(3) or match.group(4) or ""
    try:
        values = ast.literal_eval(f"({inside},)") if inside.strip() else ()
    except (ValueError, SyntaxError):
        raise BatchAIError("InvalidArgument", f"--param {text!r}: its values are not Python literals; {hint}") from None
    if kind in _LISTS:
        return name, {"type": kind, "values": list(values)}
    if kind in _RANGES:
        keys = _RANGES[kind]
        if len(values) != len(keys):
            raise BatchAIError("InvalidArgument", f"--param {text!r}: {kind} takes {', '.join(keys)}")
        return name, {"type": kind, **dict(zip(keys, values, strict=True))}
    raise BatchAIError(
        "InvalidArgument",
        f"--param {text!r}: {kind!r} is not a parameter type; use choice, grid, uniform, loguniform or quniform",
    )


def early_termination(
    policy: str | None,
    delay: int | None,
    interval: int | None,
    slack_factor: float | None,
    slack_amount: float | None,
    startup: int | None,
) -> dict | None:
    if not policy:
        return None
    block: dict = {"policy": policy}
    for key, value in (
        ("delayEvaluation", delay),
        ("evaluationInterval", interval),
        ("slackFactor", slack_factor),
        ("slackAmount", slack_amount),
        ("startupTrials", startup),
    ):
        if value is not None:
            block[key] = value
    return block
