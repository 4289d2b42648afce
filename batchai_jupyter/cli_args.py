"""Command-line parsing as az answered a mistake: an unknown flag gets the usage of the subcommand it was
given to and the closest flag that subcommand has (argparse suggests only from Python 3.14 on)."""

from __future__ import annotations

import argparse
import difflib


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    if extras:
        leaf = leaf_parser(parser, args)
        flags = [word for word in extras if word.startswith("-")]
        hint = did_you_mean(leaf, flags[0]) if flags else ""
        leaf.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    return args


def leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the subcommand `args` chose, e.g. the one of `cluster node exec`."""
    while True:
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, nested[0].dest, None) if nested else None
        if chosen is None or chosen not in nested[0].choices:
            return parser
        parser = nested[0].choices[chosen]


def did_you_mean(parser: argparse.ArgumentParser, word: str) -> str:
    flag = word.split("=", 1)[0]
    known = [option for action in parser._actions for option in action.option_strings]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
