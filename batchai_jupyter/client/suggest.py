"""'Did you mean': the closest existing name to one that does not exist (difflib), for a cluster, a job
or a command-line option, as the CLI and the magics say it."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable

from ..errors import BatchAIError

_MISSING = re.compile(r"^(cluster|job) '([^']*)' not found")


def closest(word: str, names: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def option_hint(parser: argparse.ArgumentParser, word: str) -> str:
    """ "; did you mean --nodes?" for `--nodse`, from the options `parser` knows; "" when none is close."""
    # compared without their dashes: every long option shares "--", which made `--nodse` look like `--qos`
    known = {option.lstrip("-"): option for action in parser._actions for option in action.option_strings}
    close = closest(word.split("=", 1)[0].lstrip("-"), known)
    return f"; did you mean {known[close]}?" if close else ""


def parse_known(parser: argparse.ArgumentParser, argv: list[str], error_parser=None) -> argparse.Namespace:
    """`parser.parse_args(argv)`, but an unknown option is answered with the closest one it has
    (argparse suggests only from Python 3.14 on); `error_parser` reports it (a subcommand's parser)."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        reporter = error_parser(args) if error_parser else parser
        flags = [word for word in extras if word.startswith("-")]
        hint = option_hint(reporter, flags[0]) if flags else ""
        reporter.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    return args


def missing_name(failure: BatchAIError) -> tuple[str, str] | None:
    """("cluster", "gpux") for the service's ClusterNotFound/JobNotFound error, else None."""
    if failure.code not in ("ClusterNotFound", "JobNotFound"):
        return None
    found = _MISSING.match(failure.message)
    return (found.group(1), found.group(2)) if found else None


def retold(failure: BatchAIError, candidates: dict[str, str], hint: str | None = None) -> BatchAIError:
    """The not-found `failure` with the closest of `candidates` ({name: how to name it, e.g.
    "'train' (experiment 'mnist': -e mnist)"}) and, when given, this face's `hint` instead of the service's."""
    kind, name = missing_name(failure) or ("", "")
    if not kind:
        return failure
    match = closest(name, candidates)
    message = f"{kind} '{name}' not found"
    if match is not None:
        message += f" (did you mean {candidates[match]}?)"
    rest = hint or failure.message.partition(";")[2].strip()
    if rest:
        message += f"; {rest}"
    return BatchAIError(failure.code, message, failure.status)


def with_closest(
    failure: BatchAIError, client, workspace: str, experiment: str | None = None, hints: dict[str, str] | None = None
) -> BatchAIError:
    """`failure` (any error) retold when it is a missing cluster or job: with the closest name of the
    workspace's clusters, or of its jobs (those of `experiment` first; one of another experiment is named
    with its -e), and this face's hint from `hints` ({"cluster": "create it with ... {name}"}) if any."""
    missing = missing_name(failure)
    if missing is None:
        return failure
    kind, name = missing
    candidates: dict[str, str] = {}
    try:
        if kind == "cluster":
            candidates = {c["name"]: f"'{c['name']}'" for c in client.clusters(workspace)}
        else:
            for job in client.jobs(workspace):
                if job["experiment"] == experiment:
                    candidates[job["name"]] = f"'{job['name']}'"
                else:
                    other = job["experiment"]
                    candidates.setdefault(job["name"], f"'{job['name']}' in experiment '{other}' (-e {other})")
    except BatchAIError:  # the error is told as it came; no suggestion
        pass
    hint = (hints or {}).get(kind)
    return retold(failure, candidates, hint.format(name=name, experiment=experiment) if hint else None)
