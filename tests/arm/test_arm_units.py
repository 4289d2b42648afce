"""The ARM face's pure parts: ISO 8601 durations as the SDK reads them, and the signing of download links."""

from __future__ import annotations

import datetime

import isodate
import pytest

from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.server.arm.envelopes import iso_duration
from batchai_jupyter.server.arm.links import KEY_FILE, LinkSigner, load_key


@pytest.mark.parametrize("seconds", [604800, 5400, 90061.5, 59, 3600, 1])
def test_durations_read_back_as_the_same_seconds(seconds):
    text = iso_duration(seconds)
    assert text.startswith("P")
    assert isodate.parse_duration(text) == datetime.timedelta(seconds=seconds)  # what the SDK deserializes


def test_batch_ai_s_default_wall_clock_is_p7d():
    assert iso_duration(7 * 86400) == "P7D" and iso_duration(5400) == "PT1H30M"


def test_a_link_is_good_for_its_file_until_it_expires(tmp_path, monkeypatch):
    key = load_key(str(tmp_path))
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600 and load_key(str(tmp_path)) == key
    signer = LinkSigner(key)
    values = {"ws": "w", "exp": "e", "job": "j", "uuid": "u", "dir": "stdouterr", "path": "stdout.txt"}
    query = dict(part.split("=", 1) for part in signer.query(values, 5).split("&"))
    signed = {field: query[field] for field in LinkSigner.FIELDS}
    signer.check(signed, query["sig"])
    with pytest.raises(BatchAIError, match="not valid"):
        signer.check({**signed, "path": "stderr.txt"}, query["sig"])
    with pytest.raises(BatchAIError, match="not valid"):
        LinkSigner(b"another key of thirty-two bytes!").check(signed, query["sig"])
    monkeypatch.setattr("time.time", lambda: float(signed["se"]) + 1)
    with pytest.raises(BatchAIError, match="expired"):
        signer.check(signed, query["sig"])
