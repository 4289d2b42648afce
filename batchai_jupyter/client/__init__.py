"""The Python SDK of the batchai service: `Client` (every REST route), finding or starting a service,
uploads (`client.uploads`), following files (`client.follow`) and the event stream (`client.events`)."""

from .api import API, ENDED, Client
from .discovery import start_local_service
from .events import EventStream
from .transport import error_from

__all__ = ["API", "ENDED", "Client", "EventStream", "error_from", "start_local_service"]
