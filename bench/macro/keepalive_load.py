#!/usr/bin/env python3
"""Sends a fixed number of keep-alive requests over a few connections and checks every answer.

Used by profile.sh, where the proxy runs under callgrind or strace and a request count, not a
duration, is what matters: each connection keeps one request in flight (like wrk), the answers
must be 200 with a Content-Length or chunked body, and the run fails loudly otherwise.

  keepalive_load.py --port P [--host 127.0.0.1] [--path /predict] [--method POST]
                    [--body '{"amount":1}'] [--requests 20000] [--connections 32]
"""
import argparse
import selectors
import socket
import sys
import time


class Conn:
    def __init__(self, host, port, request):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.request = request
        self.buf = bytearray()

    def send(self):
        self.sock.sendall(self.request)

    def answer_end(self):
        """Index just past one complete answer in buf, or None. Raises on a non-200 answer."""
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = bytes(self.buf[:head_end]).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        if status != 200:
            raise RuntimeError(f"answer {status}: {head[0]}")
        length, chunked = None, False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = head_end + 4
        if length is not None:
            return start + length if len(self.buf) >= start + length else None
        if not chunked:
            raise RuntimeError("answer without Content-Length or chunked framing")
        end = self.buf.find(b"\r\n0\r\n\r\n", start - 2)
        return end + 7 if end >= 0 else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/predict")
    p.add_argument("--method", default="POST")
    p.add_argument("--body", default='{"amount":1}')
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    a = p.parse_args()

    body = a.body.encode() if a.method != "GET" else b""
    head = f"{a.method} {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = (head + "\r\n").encode() + body

    sel = selectors.DefaultSelector()
    conns = [Conn(a.host, a.port, request) for _ in range(min(a.connections, a.requests))]
    sent = done = 0
    for c in conns:
        c.send()
        sent += 1
        sel.register(c.sock, selectors.EVENT_READ, c)
    deadline = time.monotonic() + a.timeout
    while done < a.requests:
        if time.monotonic() > deadline:
            sys.exit(f"keepalive_load: timed out after {done} of {a.requests} answers")
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            data = c.sock.recv(262144)
            if not data:
                sys.exit(f"keepalive_load: connection closed after {done} answers")
            c.buf += data
            while True:
                end = c.answer_end()
                if end is None:
                    break
                del c.buf[:end]
                done += 1
                if sent < a.requests:
                    c.send()
                    sent += 1
    for c in conns:
        c.sock.close()
    print(done)


if __name__ == "__main__":
    main()
