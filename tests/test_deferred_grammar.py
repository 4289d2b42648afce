"""`batchai serve` defers rfc3987_syntax's grammar (built at import, seconds on a loaded machine) until an
IRI is validated: jupyter_server starts without it, and jsonschema's IRI checks still judge as before."""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a fresh interpreter: the test process may have imported jsonschema already.
PROBE = """
import json, sys
from batchai_jupyter.server.deferred_grammar import defer_iri_grammar
installed = defer_iri_grammar()
import jupyter_server.serverapp  # what `batchai serve` imports: jupyter_events, jsonschema's format checker
import jsonschema
after_server_import = "lark" in sys.modules
checker = jsonschema.FormatChecker()
schema = {"type": "string", "format": "iri"}
verdicts = {text: jsonschema.Draft7Validator(schema, format_checker=checker).is_valid(text)
            for text in ("https://example.org/r\u00e9sum\u00e9?x=1#top", "http://exa mple.org/", "no scheme")}
print(json.dumps({"installed": installed, "grammar_built_at_start": after_server_import,
                  "grammar_built_after_check": "lark" in sys.modules, "verdicts": verdicts,
                  "again": defer_iri_grammar()}))
"""


def test_the_iri_grammar_is_built_on_first_use_and_judges_as_before():
    answer = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(answer.stdout.strip().splitlines()[-1])
    assert result["installed"] is True
    assert result["grammar_built_at_start"] is False
    assert result["grammar_built_after_check"] is True
    assert result["verdicts"] == {
        "https://example.org/r\u00e9sum\u00e9?x=1#top": True,
        "http://exa mple.org/": False,
        "no scheme": False,
    }
    assert result["again"] is False  # the real package is in place now: nothing more to defer
