"""Command-line parsing as az answered a mistake: an unknown flag gets the usage of the subcommand it was
given to and the closest flag that subcommand has."""

from __future__ import annotations

import argparse

from .client.suggest import parse_known


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    return parse_known(parser, argv, lambda args: leaf_parser(parser, args))


def leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the subcommand `args` chose, e.g. the one of `cluster node exec`."""
    while True:
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, nested[0].dest, None) if nested else None
        if chosen is None or chosen not in nested[0].choices:
            return parser
        parser = nested[0].choices[chosen]
