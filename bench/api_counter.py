"""A counting relay in front of the Prefect server: how many API calls each kind of client makes.

    python -m bench.api_counter LOG UPSTREAM_PORT LABEL=PORT [LABEL=PORT ...]

Each LABEL listens on its own local port and relays bytes both ways to the Prefect server
on UPSTREAM_PORT. Every HTTP request line a client sends (`POST /api/... HTTP/1.1`) is
appended to LOG as `time<TAB>label<TAB>method<TAB>path`; websockets (events, logs) are
relayed untouched and count once, at their upgrade request. Pointing a client's
PREFECT_API_URL at a label's port is all it takes to count that client's calls.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import TextIO

REQUEST_LINE = re.compile(
    rb"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/[^ \r\n]*) HTTP/1\.[01]\r\n"
)
KEEP = 4096  # a request line cut by a read is found again in the next one


class Counter:
    def __init__(self, log: TextIO, upstream_port: int) -> None:
        self.log = log
        self.upstream_port = upstream_port

    def record(self, label: str, method: bytes, path: bytes) -> None:
        self.log.write(f"{time.time():.4f}\t{label}\t{method.decode()}\t{path.decode()}\n")
        self.log.flush()

    async def relay(
        self, label: str, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(
            self._requests(label, client_in, server_out),
            self._pump(server_in, client_out),
            return_exceptions=True,
        )

    async def _requests(
        self, label: str, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        pending = b""
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                pending += chunk
                end = 0
                for match in REQUEST_LINE.finditer(pending):
                    self.record(label, match.group(1), match.group(2))
                    end = match.end()
                pending = pending[end:][-KEEP:]
                await sink.drain()
        finally:
            sink.close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        finally:
            sink.close()


async def serve(log_path: Path, upstream_port: int, listeners: dict[str, int]) -> None:
    with log_path.open("a", encoding="utf-8") as log:
        counter = Counter(log, upstream_port)
        servers = []
        for label, port in listeners.items():

            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str = label
            ) -> None:
                await counter.relay(label, reader, writer)

            servers.append(await asyncio.start_server(handle, "127.0.0.1", port))
        print("ready", flush=True)
        await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> None:
    log_path, upstream, *pairs = argv
    listeners = {label: int(port) for label, port in (pair.split("=", 1) for pair in pairs)}
    asyncio.run(serve(Path(log_path), int(upstream), listeners))


if __name__ == "__main__":
    main(sys.argv[1:])
