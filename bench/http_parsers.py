"""HTTP/1.1 request parsers side by side: h11, httptools, and the hand-written one.

Each parser serves one keep-alive connection's worth of requests: the bytes of each request
are fed as one read (as a connection process receives them), the request is parsed whole
(method, target, headers, body), and a two-byte answer is framed, since a server-side h11
cannot take the next request before its answer (the other two frame it by hand). Two
workloads: a typical browser-like keep-alive ``GET`` (9 headers), and a ``POST`` of a
1 KiB JSON body. Figures: requests per
second per parser, in the same run, and the ratio to h11 (the parser in use by
``server.net._asgi_connection``). httptools is optional (``pip install httptools``); when
missing, its lines say so.

Run from the repository root::

    .venv/bin/python bench/http_parsers.py --quick

One JSON object per line on stdout (the format of ``bench/runtime.py``), a human summary on
stderr.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import h11

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: bench.* is imported from the root
    sys.path.insert(0, str(ROOT))

from bench.runtime import Result  # noqa: E402
from server.net.http import RequestParser  # noqa: E402

GET: Final = (
    b"GET /api/items?page=2&size=20 HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: application/json, text/plain, */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://shop.example.com/items\r\n"
    b"Cookie: session=4f9c2a1e7b3d4c5e8f60a1b2c3d4e5f6; theme=dark\r\n"
    b"Connection: keep-alive\r\n"
    b"Cache-Control: no-cache\r\n"
    b"\r\n"
)
_BODY: Final = b'{"items": [' + b",".join(b'{"id": %d, "n": 1}' % i for i in range(60)) + b"]}"
POST: Final = (
    b"POST /api/orders HTTP/1.1\r\n"
    b"Host: shop.example.com\r\n"
    b"User-Agent: client/1.0\r\n"
    b"Content-Type: application/json\r\n"
    b"Accept: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
    b"\r\n" + _BODY
)
ANSWER_HEADERS: Final = [(b"content-length", b"2")]


def frame(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """An answer framed by hand (what a connection on httptools or the hand parser does)."""
    head = b"".join(b"%s: %s\r\n" % pair for pair in headers)
    return b"HTTP/1.1 %d OK\r\n%s\r\n%s" % (status, head, body)


Serve = Callable[[bytes, int], int]


def serve_h11(request: bytes, count: int) -> int:
    """h11's state machine: receive, events up to EndOfMessage, frame the answer, cycle."""
    conn = h11.Connection(h11.SERVER)
    answered = 0
    headers = ANSWER_HEADERS
    for _ in range(count):
        conn.receive_data(request)
        body = b""
        while True:
            event = conn.next_event()
            if type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
        conn.send(h11.Response(status_code=200, headers=headers))
        conn.send(h11.Data(data=b"ok"))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()
        answered += 1
    return answered


def serve_httptools(request: bytes, count: int) -> int:
    """httptools (llhttp): callbacks collect the request; the answer is framed by hand."""
    import httptools

    class Protocol:
        def __init__(self) -> None:
            self.url = b""
            self.headers: list[tuple[bytes, bytes]] = []
            self.body = b""
            self.done = 0

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value))

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            self.done += 1

    protocol = Protocol()
    parser = httptools.HttpRequestParser(protocol)
    answered = 0
    for _ in range(count):
        protocol.url, protocol.headers, protocol.body = b"", [], b""
        parser.feed_data(request)
        parser.get_method()
        parser.should_keep_alive()
        frame(200, ANSWER_HEADERS, b"ok")
        answered += 1
    assert protocol.done == count
    return answered


def serve_hand_written(request: bytes, count: int) -> int:
    """``server.net.http.RequestParser``, the handler server's parser."""
    parser = RequestParser()
    answered = 0
    for _ in range(count):
        parser.feed(request)
        parsed = parser.next_request()
        assert parsed is not None
        frame(200, ANSWER_HEADERS, b"ok")
        answered += 1
    return answered


def _available() -> dict[str, Serve | None]:
    try:
        import httptools  # noqa: F401
    except ImportError:
        tools: Serve | None = None
    else:
        tools = serve_httptools
    return {"h11": serve_h11, "httptools": tools, "hand-written": serve_hand_written}


def _rate(serve: Serve, request: bytes, count: int) -> float:
    began = time.perf_counter()
    assert serve(request, count) == count
    return count / (time.perf_counter() - began)


def run(count: int, repeats: int) -> tuple[list[Result], str]:
    parsers = _available()
    results: list[Result] = []
    lines = [f"HTTP parsers, {count} requests per run, median of {repeats} (interleaved)"]
    for workload, request in (("get", GET), ("post", POST)):
        rates: dict[str, list[float]] = {name: [] for name, fn in parsers.items() if fn}
        for _ in range(repeats):
            for name, fn in parsers.items():
                if fn is not None:
                    rates[name].append(_rate(fn, request, count))
        median = {name: statistics.median(values) for name, values in rates.items()}
        base = median["h11"]
        for name in parsers:
            if name not in median:
                lines.append(f"  {workload:4} {name:13} skipped: pip install httptools")
                continue
            value = median[name]
            slug = name.replace("-", "_")
            results.append(
                Result(f"http_parse_{workload}_{slug}", value, "requests/s", "h11", base,
                       value / base)
            )  # fmt: skip
            lines.append(
                f"  {workload:4} {name:13} {value:>10,.0f} requests/s  {value / base:5.2f}x h11"
            )
    return results, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests and repeats")
    parser.add_argument("--count", type=int, default=None, help="requests per run")
    args: Any = parser.parse_args(argv)
    count = args.count or (5_000 if args.quick else 50_000)
    repeats = 3 if args.quick else 5
    results, summary = run(count, repeats)
    for result in results:
        print(result.json())
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
