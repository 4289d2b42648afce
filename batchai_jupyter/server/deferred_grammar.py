"""Keeps one dependency's start-up cost off `batchai serve`'s first answer.

jupyter_server logs through jupyter_events, which validates with jsonschema's format checker, whose
module imports `rfc3987_syntax` (pulled in by `jsonschema[format-nongpl]`) to check the "iri" and
"iri-reference" formats. That package builds an Earley parser for the whole RFC 3987 grammar when
it is imported: 1 s on a quiet machine, more than 3 s on a loaded one, more than all the rest of
the service's start-up together. No schema the server loads at start uses those formats.

`defer_iri_grammar()` puts a stand-in under that module's name before jupyter_server is imported.
The stand-in offers the one function jsonschema takes from it, `is_valid_syntax`, which imports the
real package on its first call and hands over to it: the check is the same, its grammar is built
when a document with an IRI is first validated, if ever, instead of at every start.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

MODULE = "rfc3987_syntax"
_loading = threading.Lock()


def _real_module() -> types.ModuleType:
    with _loading:
        current = sys.modules.get(MODULE)
        if current is None or getattr(current, "_batchai_stand_in", False):
            sys.modules.pop(MODULE, None)
            current = importlib.import_module(MODULE)
        return current


def _is_valid_syntax(term: str, value: str) -> bool:
    return bool(_real_module().is_valid_syntax(term, value))


def defer_iri_grammar() -> bool:
    """Installs the stand-in; False (and nothing done) when the package is already imported or not there."""
    if MODULE in sys.modules:
        return False
    spec = importlib.util.find_spec(MODULE)
    if spec is None:
        return False
    stand_in = types.ModuleType(MODULE, "the rfc3987_syntax package, imported on first use (see batchai_jupyter)")
    stand_in.__spec__ = spec
    stand_in._batchai_stand_in = True  # type: ignore[attr-defined]
    stand_in.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[MODULE] = stand_in
    return True
