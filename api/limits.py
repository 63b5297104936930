"""Request bodies are capped: a body over the limit is refused with 413 (the JSON error shape)
before it is read into memory, whether it declares its length or streams."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


def _refusal(limit: int) -> tuple[dict[str, Any], bytes]:
    body = json.dumps(
        {
            "code": "request.too_large",
            "message": f"The request body is over {limit} bytes; send less.",
            "limit": limit,
        }
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, body


class BodyLimit:
    """ASGI middleware: at most `limit` bytes of request body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        over = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The app may turn the interrupted read into its own error (FastAPI answers 400):
            # once the body went over the limit, the answer is the 413, whatever the app says.
            nonlocal replaced
            if not over:
                await send(message)
            elif not replaced:
                replaced = True
                await self._refuse(send)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            if not replaced:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        start, body = _refusal(self.limit)
        await send(start)
        await send({"type": "http.response.body", "body": body})
