"""Raw HTTP/1.1 over a socket, for requests no HTTP library would send (bad bytes, stalls, lies about length)."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def read_reply(sock: socket.socket) -> Reply:
    """One reply, read as far as its Content-Length, whether or not the server closes the connection after it."""
    raw = b""
    while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < int(
            parse(raw).headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    return parse(raw)


def exchange(port: int, data: bytes, timeout: float = 10.0) -> Reply:
    """Sends `data` as it is, then reads the reply until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return parse(read_all(sock))


def post(port: int, body: bytes, path: str = "/v1/rerank", content_type: str | None = "application/json",
         headers: bytes = b"") -> Reply:
    """A whole POST with `Connection: close`, body as given."""
    typed = f"Content-Type: {content_type}\r\n".encode() if content_type is not None else b""
    return exchange(port, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
                    + typed + headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
