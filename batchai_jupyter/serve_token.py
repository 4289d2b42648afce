"""The token `batchai serve` checks: from $BATCHAI_TOKEN or a file only readable by its owner, never from
argv (`ps` shows every process's arguments to every local user), and never empty by accident."""

from __future__ import annotations

import os
import stat

from .errors import BatchAIError

OPT_OUT_FLAG = "--no-auth-i-have-my-own-proxy"


def serve_auth_arguments(token_file: str | None, no_auth: bool, environ=os.environ) -> list[str]:
    """Jupyter server arguments for the token; none means Jupyter makes a random one (and prints it)."""
    if no_auth:
        return ["--IdentityProvider.token=", "--BatchAIApp.no_auth_i_have_my_own_proxy=True"]
    if token_file is not None:
        token = read_token_file(token_file)
    elif "BATCHAI_TOKEN" in environ:
        token = environ["BATCHAI_TOKEN"].strip()
        if not token:
            raise BatchAIError(
                "EmptyToken",
                "BATCHAI_TOKEN is set but empty, which would switch authentication "
                f"off; set it to a secret, unset it for a random one, or pass "
                f"{OPT_OUT_FLAG} if a proxy in front authenticates every request",
            )
    else:
        return []
    return [f"--IdentityProvider.token={token}"]


def read_token_file(path: str) -> str:
    try:
        with open(path) as handle:
            mode = os.fstat(handle.fileno()).st_mode
            token = handle.read().strip()
    except OSError as failure:
        raise BatchAIError("TokenFileUnreadable", f"--token-file {path}: {failure.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BatchAIError(
            "TokenFileOpen",
            f"--token-file {path} can be read by other users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`",
        )
    if not token:
        raise BatchAIError(
            "EmptyToken",
            f"--token-file {path} is empty, which would switch authentication off; "
            f"write a secret into it, or pass {OPT_OUT_FLAG} if a proxy in front "
            "authenticates every request",
        )
    return token
