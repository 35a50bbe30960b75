"""An SMTP server in its own process that answers like a real provider (for mail_fanout).

    python -m bench.smtp_provider --port 2525 --greeting-ms 20 --message-ms 10 --log ids.txt

aiosmtpd on localhost: each connection waits `--greeting-ms` before the 220 greeting and
each accepted message waits `--message-ms` before its 250 (the provider's own work: spam
checks, queueing), concurrently for every connection as a real provider would. The
Message-ID of every accepted message is appended to `--log` (written before the 250, so a
client that got its 250 finds the line); the benchmark counts duplicates and losses there.
"ready" is printed once the server listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from email.parser import BytesHeaderParser
from typing import IO, Any

from aiosmtpd.smtp import SMTP


class Provider:
    """The handler: waits like a provider, keeps the Message-IDs it accepted."""

    def __init__(self, message_seconds: float, log: IO[str]) -> None:
        self.message_seconds = message_seconds
        self.log = log
        self.headers = BytesHeaderParser()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.message_seconds:
            await asyncio.sleep(self.message_seconds)
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else content.encode()
        message_id = self.headers.parsebytes(raw)["Message-ID"] or "(none)"
        self.log.write(f"{message_id}\n")
        self.log.flush()
        return "250 2.0.0 Ok: queued"


class SlowGreetingSMTP(SMTP):
    """aiosmtpd's SMTP session, greeting only after `greeting_seconds` (DNS, TLS, banners)."""

    def __init__(self, handler: Provider, greeting_seconds: float) -> None:
        super().__init__(handler, hostname="provider.bench", ident="bench provider")
        self.greeting_seconds = greeting_seconds

    async def _handle_client(self) -> None:
        if self.greeting_seconds:
            await asyncio.sleep(self.greeting_seconds)
        await super()._handle_client()


async def serve(host: str, port: int, greeting_ms: float, message_ms: float, log: IO[str]) -> None:
    handler = Provider(message_ms / 1000, log)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SlowGreetingSMTP(handler, greeting_ms / 1000), host, port, backlog=512
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serveur SMTP de banc d'essai (fournisseur)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--greeting-ms", type=float, default=20.0)
    parser.add_argument("--message-ms", type=float, default=10.0)
    parser.add_argument("--log", required=True, help="fichier des Message-ID reçus")
    args = parser.parse_args(argv)
    with open(args.log, "a", encoding="utf-8") as log:
        asyncio.run(serve(args.host, args.port, args.greeting_ms, args.message_ms, log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
