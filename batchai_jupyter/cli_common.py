"""What every `batchai` command needs: the service's client, and asking before destroying something."""

from __future__ import annotations

import sys

from .client import Client
from .errors import BatchAIError

CONFIRM_HINT = "add -y to confirm (no terminal to ask on)"


def service_client() -> Client:
    return Client.discover(announce=lambda line: print(line, file=sys.stderr))


def confirm(args, question: str) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise BatchAIError("NotConfirmed", f"{question}: {CONFIRM_HINT}")
    if input(f"{question} (y/n): ").strip().lower() not in ("y", "yes"):
        raise BatchAIError("NotConfirmed", "cancelled")
