"""Fault injection at the boto3 client: the Python half of src/aws/faults.ts.

``SERVERLESS_TF_FAULT_RATE`` (0..0.5) makes that fraction of calls fail as AWS really fails:
throttling, a 5xx, a timeout before the request, or a response lost after the request took
effect. The hook runs on botocore's ``before-send`` event, inside its retry loop, so every
injected fault meets the same retry decision a real one would.
"""
from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.httpsession import URLLib3Session

KINDS = ("throttling", "server-error", "timeout", "lost-response")


@dataclass
class FaultInjector:
    rate: float
    seed: int
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._session: Optional[URLLib3Session] = None

    @staticmethod
    def from_env(env: Mapping[str, str] = os.environ) -> Optional["FaultInjector"]:
        raw = env.get("SERVERLESS_TF_FAULT_RATE", "")
        if raw in ("", "0"):
            return None
        try:
            rate = float(raw)
        except ValueError:
            rate = -1.0
        if not 0 < rate <= 0.5:
            raise ValueError(f"SERVERLESS_TF_FAULT_RATE must be a fraction of calls from 0 to 0.5, e.g. 0.05. Received: {raw!r}")
        return FaultInjector(rate, int(env.get("SERVERLESS_TF_FAULT_SEED", "1")))

    def _draw(self) -> Optional[str]:
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            kind = KINDS[self._random.randrange(len(KINDS))]
            self.counts[kind] += 1
            return kind

    def before_send(self, request: Any, **_: Any) -> Optional[AWSResponse]:
        kind = self._draw()
        if kind is None:
            return None
        if kind == "throttling":
            body = b'{"__type":"ThrottlingException","message":"Rate exceeded (injected)"}'
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException", "Content-Type": "application/x-amz-json-1.0"}, _Raw(body))
        if kind == "server-error":
            return AWSResponse(request.url, 500, {}, _Raw(b"injected internal error"))
        if kind == "timeout":
            raise ConnectTimeoutError(endpoint_url=request.url)
        # lost-response: the request reaches AWS and takes effect; its answer never arrives.
        if self._session is None:
            self._session = URLLib3Session()
        self._session.send(request)
        raise ReadTimeoutError(endpoint_url=request.url)


class _Raw:
    """The raw-stream shape AWSResponse reads its body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


_shared: Optional[FaultInjector] = None
_configured = False


def injector() -> Optional[FaultInjector]:
    """The process-wide injector configured from the environment (None when faults are off)."""
    global _shared, _configured
    if not _configured:
        _shared = FaultInjector.from_env()
        _configured = True
    return _shared


def install(client: Any, faults: Optional[FaultInjector] = None) -> Any:
    """Registers the injector on ``client`` when faults are on; returns the client."""
    faults = faults if faults is not None else injector()
    if faults is not None:
        client.meta.events.register("before-send", faults.before_send)
    return client
