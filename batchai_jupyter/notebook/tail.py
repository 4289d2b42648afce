"""Reading a job's file as it grows, by ranged reads (`offset`), the way every view of logs does."""
from __future__ import annotations

import codecs

from ..client import Client
from ..errors import BatchAIError


class FileTail:
    """New text of one job file since the last `read()`; "" while it does not exist yet."""

    def __init__(self, client: Client, workspace: str, experiment: str, job: str, path: str,
                 output_id: str = "stdouterr"):
        self.client = client
        self.where = (workspace, experiment, job)
        self.path = path
        self.output_id = output_id
        self.offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read(self) -> str:
        try:
            chunk = self.client.read_job_file(*self.where, self.path, self.output_id, self.offset)
        except BatchAIError as failure:
            if failure.code == "FileNotFound":
                return ""
            raise
        self.offset += len(chunk)
        return self._decoder.decode(chunk)
