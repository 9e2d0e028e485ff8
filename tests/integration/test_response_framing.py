"""The response head and framing the proxy writes itself, read off raw sockets.

The upstream is scripted byte for byte (a raw asyncio server), so a test can send a
304 with a Content-Length, no Content-Type, its own Server, a body in pieces with
pauses between them; the client is a blocking socket that reads each response by its
framing, so a stray byte or a wrong length shows up as the next response gone wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.harness import stack
from tests.integration.upstreams import echo_app

PATIENCE = 30.0
Script = list[bytes | float]       # bytes to write, or seconds to pause


@dataclass
class Scripted:
    """An upstream answering each path (without query) with its script, keep-alive."""

    scripts: dict[str, Script] = field(default_factory=dict)
    heads: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                path = head.split(b" ", 2)[1].decode().partition("?")[0]
                for piece in self.scripts[path]:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                    else:
                        writer.write(piece)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@dataclass
class Edge:
    url: str
    upstream: Scripted
    runner: str
    counter: Iterator[int] = field(default_factory=itertools.count)

    def script(self, *pieces: bytes | float) -> str:
        """A fresh path answered with `pieces`."""
        path = f"/s{next(self.counter)}"
        self.upstream.scripts[path] = list(pieces)
        return path

    def connect(self) -> Client:
        host, port = self.url.removeprefix("http://").split(":")
        return Client(socket.create_connection((host, int(port)), timeout=PATIENCE))


@dataclass
class Response:
    status: int
    version: bytes
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[int]        # chunk sizes, when chunked

    def get(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class Client:
    """One connection to the proxy, reading responses by their framing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def send(self, method: str, path: str, version: str = "HTTP/1.1", *extra: str) -> None:
        head = f"{method} {path} {version}\r\nHost: careers.test\r\n"
        head += "".join(f"{line}\r\n" for line in extra)
        self.sock.sendall(head.encode() + b"\r\n")

    def response(self, method: str = "GET") -> Response:
        line = self.file.readline()
        assert line.endswith(b"\r\n"), line
        version, status = line.split(b" ", 2)[:2]
        headers = []
        while (raw := self.file.readline()) != b"\r\n":
            assert raw.endswith(b"\r\n"), raw
            name, _, value = raw[:-2].decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        resp = Response(int(status), version, headers, b"", [])
        if method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            return resp
        if resp.get("Transfer-Encoding") == ["chunked"]:
            assert not resp.get("Content-Length")
            while size := int(self.file.readline().strip(), 16):
                resp.chunks.append(size)
                resp.body += self.file.read(size)
                assert self.file.read(2) == b"\r\n"
            assert self.file.read(2) == b"\r\n"
        elif length := resp.get("Content-Length"):
            resp.body = self.file.read(int(length[0]))
        else:
            resp.body = self.file.read()        # close-delimited
        return resp

    def exchange(self, method: str, path: str, version: str = "HTTP/1.1",
                 *extra: str) -> Response:
        self.send(method, path, version, *extra)
        return self.response(method)

    def closed(self) -> bool:
        """The proxy closed the connection (and sent nothing more)."""
        try:
            return self.file.read() == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture(scope="module", params=["edge_runner", "app_runner"])
def edge(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """One proxy in front of a scripted upstream, on a loop of its own: served as
    `careers-edge run` serves it, and as an application under `web.AppRunner`."""
    ready = threading.Event()
    box: dict[str, object] = {}
    upstream = Scripted()

    async def serve() -> None:
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        raw = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
        port = raw.sockets[0].getsockname()[1]
        async with stack(echo_app(), tmp=tmp_path_factory.mktemp("framing"),
                         upstream_url=f"http://127.0.0.1:{port}",
                         app_runner=request.param == "app_runner") as s:
            box["url"] = s.proxy_url
            ready.set()
            await stop.wait()
        raw.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the proxy did not start"
    yield Edge(str(box["url"]), upstream, request.param)
    box["loop"].call_soon_threadsafe(box["stop"].set)  # type: ignore[attr-defined]
    thread.join(30)


def whole(body: bytes = b"whole", *headers: str, status: str = "200 OK") -> bytes:
    lines = "".join(f"{h}\r\n" for h in headers)
    head = f"HTTP/1.1 {status}\r\n{lines}Content-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


def chunked_in_pieces(pieces: list[bytes], pause: float = 0.02, *headers: str) -> Script:
    """A chunked upstream body, one chunk per piece, pausing before each one."""
    lines = "".join(f"{h}\r\n" for h in headers)
    script: Script = [f"HTTP/1.1 200 OK\r\n{lines}Transfer-Encoding: chunked\r\n\r\n".encode()]
    for piece in pieces:
        script += [pause, b"%x\r\n%s\r\n" % (len(piece), piece)]
    return [*script, b"0\r\n\r\n"]


def test_a_streamed_body_of_unknown_length_is_chunked_and_the_connection_kept(edge) -> None:
    streamed = edge.script(*chunked_in_pieces([b"one,", b"two,", b"three"], 0.05))
    after = edge.script(whole(b"next"))
    client = edge.connect()
    resp = client.exchange("GET", streamed)
    assert resp.status == 200 and resp.body == b"one,two,three"
    assert resp.get("Transfer-Encoding") == ["chunked"] and not resp.get("Content-Length")
    assert len(resp.chunks) > 1                      # it streamed, not held to the end
    assert not resp.get("Connection")                # HTTP/1.1 keep-alive needs no header
    assert client.exchange("GET", after).body == b"next"     # the same connection
    client.close()


def test_a_length_is_kept_while_the_body_streams(edge) -> None:
    body = [b"a" * 1000, b"b" * 2000, b"c"]
    path = edge.script(b"HTTP/1.1 200 OK\r\nContent-Length: 3001\r\n\r\n", *itertools.chain(
        *((0.03, piece) for piece in body)))
    client = edge.connect()
    resp = client.exchange("GET", path)
    assert resp.get("Content-Length") == ["3001"] and not resp.get("Transfer-Encoding")
    assert resp.body == b"".join(body)
    assert client.exchange("GET", edge.script(whole(b"again"))).body == b"again"
    client.close()


def test_a_whole_response_keeps_its_length_and_the_connection(edge) -> None:
    path = edge.script(whole(b"<p>hi</p>", "Content-Type: text/html"))
    client = edge.connect()
    for _ in range(3):
        resp = client.exchange("GET", path)
        assert resp.body == b"<p>hi</p>" and resp.get("Content-Length") == ["9"]
        assert resp.get("Content-Type") == ["text/html"]
    client.close()


def test_head_keeps_the_planned_length_and_sends_no_body(edge) -> None:
    path = edge.script(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n"
                       b"Content-Type: text/plain\r\n\r\n")
    client = edge.connect()
    resp = client.exchange("HEAD", path)
    assert resp.status == 200 and resp.get("Content-Length") == ["1234"]
    assert not resp.get("Transfer-Encoding")
    # No body bytes followed: the next answer on the connection starts cleanly.
    assert client.exchange("GET", edge.script(whole(b"after head"))).body == b"after head"
    client.close()


@pytest.mark.parametrize("status, extra", [
    ("204 No Content", ""),
    ("204 No Content", "Content-Length: 0\r\n"),
    ("304 Not Modified", 'ETag: "v1"\r\n'),
    ("304 Not Modified", 'ETag: "v1"\r\nContent-Length: 1234\r\n'),
])
@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/1.0"])
def test_204_and_304_have_no_body_nor_framing(edge, status, extra, version) -> None:
    path = edge.script(f"HTTP/1.1 {status}\r\n{extra}\r\n".encode())
    client = edge.connect()
    keep = () if version == "HTTP/1.1" else ("Connection: keep-alive",)
    resp = client.exchange("GET", path, version, *keep)
    assert resp.status == int(status[:3]) and resp.version == version.encode()
    assert not resp.get("Content-Length") and not resp.get("Transfer-Encoding")
    assert not resp.get("Content-Type")
    assert resp.get("ETag") == (['"v1"'] if "ETag" in extra else [])
    next_path = edge.script(whole(b"clean"))
    assert client.exchange("GET", next_path, version, *keep).body == b"clean"
    client.close()


def test_an_http10_client_gets_a_streamed_body_close_delimited(edge) -> None:
    path = edge.script(*chunked_in_pieces([b"first ", b"second"], 0.05))
    for extra in ((), ("Connection: keep-alive",)):
        client = edge.connect()
        resp = client.exchange("GET", path, "HTTP/1.0", *extra)
        assert resp.version == b"HTTP/1.0" and resp.body == b"first second"
        assert not resp.get("Transfer-Encoding") and not resp.get("Content-Length")
        assert resp.get("Connection") != ["keep-alive"]
        assert client.closed()       # the end of the body was the close
        client.close()


def test_an_http10_client_asking_keep_alive_keeps_it_for_a_known_length(edge) -> None:
    path = edge.script(whole(b"ten"))
    client = edge.connect()
    for _ in range(2):
        resp = client.exchange("GET", path, "HTTP/1.0", "Connection: keep-alive")
        assert resp.body == b"ten" and resp.get("Connection") == ["keep-alive"]
    resp = client.exchange("GET", path, "HTTP/1.0")         # no keep-alive asked: closed
    assert resp.body == b"ten" and not resp.get("Connection")
    assert client.closed()
    client.close()


@pytest.mark.parametrize("streamed", [False, True])
def test_connection_close_is_answered_with_close_and_the_connection_ends(edge,
                                                                         streamed) -> None:
    script = chunked_in_pieces([b"x", b"y"]) if streamed else [whole(b"xy")]
    path = edge.script(*script)
    client = edge.connect()
    resp = client.exchange("GET", path, "HTTP/1.1", "Connection: close")
    assert resp.body == b"xy" and resp.get("Connection") == ["close"]
    assert client.closed()
    client.close()


def test_the_upstreams_headers_pass_as_they_were(edge) -> None:
    """No Content-Type where the upstream sent none, its Server (or none) as it was,
    its Date kept; header bytes outside ASCII unchanged."""
    bare = edge.script(whole(b"no type"))
    named = edge.script(whole(b"named", "Server: upstream/9.9 (Test)",
                              "Date: Tue, 01 Dec 2026 10:00:00 GMT",
                              "X-Name: " + "café".encode().decode("latin-1")))
    client = edge.connect()
    resp = client.exchange("GET", bare)
    assert resp.body == b"no type"
    assert not resp.get("Content-Type") and not resp.get("Server")
    assert len(resp.get("Date")) == 1 and resp.get("Date")[0].endswith(" GMT")
    resp = client.exchange("GET", named)
    assert resp.get("Server") == ["upstream/9.9 (Test)"]
    assert resp.get("Date") == ["Tue, 01 Dec 2026 10:00:00 GMT"]
    assert resp.get("X-Name") == ["café".encode().decode("latin-1")]    # the same bytes
    assert resp.get("Via") == ["1.1 careers-edge"]
    client.close()


def test_our_own_answers_name_the_proxy(edge) -> None:
    client = edge.connect()
    for path, status in (("/_edge/healthz", 200), ("/_edge/nothing", 404)):
        resp = client.exchange("GET", path)
        assert resp.status == status and resp.get("Server") == ["careers-edge"]
    resp = client.exchange("GET", "http://elsewhere.example/")     # not ours: 400, closed
    assert resp.status == 400 and resp.get("Server") == ["careers-edge"]
    assert resp.get("Content-Type") == ["text/html; charset=utf-8"]
    assert resp.get("Connection") == ["close"] and client.closed()
    client.close()
    if edge.runner == "edge_runner":        # a malformed request is answered by our server
        client = edge.connect()
        client.sock.sendall(b"GET / HTTP/1.1\r\n\r\n")        # no Host
        resp = client.response()
        assert resp.status == 400 and resp.get("Server") == ["careers-edge"]
        assert client.closed()
        client.close()


BODY_PIECES = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=BODY_PIECES, http10=st.booleans(), length=st.booleans(),
       pause=st.sampled_from([0.0, 0.01]))
def test_a_body_arriving_in_any_pieces_reaches_the_visitor_whole(
        edge, pieces: list[bytes], http10: bool, length: bool, pause: float) -> None:
    """However the upstream's body is cut (chunked or with a length, at once or with
    pauses), the visitor reads exactly its bytes, framed for its HTTP version, and an
    HTTP/1.1 connection serves the next request."""
    body = b"".join(pieces)
    if length:
        script: Script = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)]
        for piece in pieces:
            script += [pause, piece]
    else:
        script = chunked_in_pieces(pieces, pause)
    path = edge.script(*script)
    client = edge.connect()
    version = "HTTP/1.0" if http10 else "HTTP/1.1"
    resp = client.exchange("GET", path, version)
    assert resp.body == body
    if length:
        assert resp.get("Content-Length") == [str(len(body))]
    elif http10:
        assert not resp.get("Transfer-Encoding") and not resp.get("Content-Length")
    else:
        assert resp.get("Transfer-Encoding") == ["chunked"]
    if http10:
        assert client.closed()
    else:
        assert client.exchange("GET", edge.script(whole(b"next"))).body == b"next"
    client.close()
