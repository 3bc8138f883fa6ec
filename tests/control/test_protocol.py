"""The wire protocol, pure: models, encode, the line decoder, parse_request, parse_reply.

No event loop here: the protocol is plain functions over bytes.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from server.control.protocol import (
    BAD_REQUEST,
    ErrorInfo,
    ErrorReply,
    LineDecoder,
    LineTooLong,
    Progress,
    ProgressInfo,
    Reply,
    Request,
    encode,
    error_reply,
    parse_reply,
    parse_request,
)

# -- models and encode -------------------------------------------------------------------------


def test_a_request_has_empty_args_by_default() -> None:
    assert Request(id=1, command="which_releases").args == {}


def test_models_are_frozen_and_refuse_unknown_fields() -> None:
    request = Request(id=1, command="install")
    with pytest.raises(ValidationError):
        request.id = 2
    with pytest.raises(ValidationError, match="extra"):
        Request(id=1, command="install", vsn="2.0.0")  # type: ignore[call-arg]


def test_progress_counts_are_not_negative() -> None:
    with pytest.raises(ValidationError, match="done"):
        ProgressInfo(step="copy", done=-1, total=3)
    with pytest.raises(ValidationError, match="total"):
        ProgressInfo(step="copy", done=1, total=-3)
    assert ProgressInfo(step="copy", done=1).total is None


@pytest.mark.parametrize(
    "message",
    [
        Request(id=3, command="install", args={"vsn": "2.0.0", "force": False}),
        Reply(id=3, result={"releases": [{"vsn": "1.0.0", "status": "permanent"}]}),
        Reply(id=3, result=None),
        error_reply(None, BAD_REQUEST, "not JSON"),
        error_reply(3, "NotPurged", "cannot load counter"),
        Progress(id=3, progress=ProgressInfo(step="load", done=2, total=5, detail="counter")),
    ],
    ids=["request", "reply", "null-result", "error-no-id", "error", "progress"],
)
def test_encode_gives_one_line_that_reads_back(
    message: Request | Reply | ErrorReply | Progress,
) -> None:
    line = encode(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    if isinstance(message, Request):
        assert parse_request(line[:-1]) == message
    else:
        assert parse_reply(line[:-1]) == message


def test_newlines_inside_strings_stay_escaped() -> None:
    line = encode(Reply(id=1, result={"text": "two\nlines\r\n", "\n": "key"}))
    assert line.count(b"\n") == 1
    assert parse_reply(line[:-1]) == Reply(id=1, result={"text": "two\nlines\r\n", "\n": "key"})


def test_non_ascii_text_round_trips() -> None:
    line = encode(Reply(id=1, result="état ✓ 日本"))
    assert parse_reply(line.rstrip(b"\n")) == Reply(id=1, result="état ✓ 日本")


# -- the line decoder --------------------------------------------------------------------------


def test_one_chunk_many_lines_and_a_partial_one() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"one\ntwo\n\nthr") == [b"one", b"two", b""]
    assert decoder.buffered == 3
    assert decoder.feed(b"ee\n") == [b"three"]
    assert decoder.buffered == 0


def test_a_line_split_byte_by_byte() -> None:
    decoder = LineDecoder()
    line = b'{"id": 1, "command": "echo"}'
    got: list[bytes | LineTooLong] = []
    for byte in line + b"\n":
        got.extend(decoder.feed(bytes([byte])))
    assert got == [line]


def test_a_line_of_exactly_the_limit_is_accepted_one_more_is_not() -> None:
    decoder = LineDecoder(max_line=8)
    assert decoder.feed(b"12345678\n") == [b"12345678"]
    assert decoder.feed(b"123456789\nok\n") == [LineTooLong(8), b"ok"]


def test_an_oversized_line_is_reported_once_and_never_held() -> None:
    decoder = LineDecoder(max_line=100)
    reports: list[bytes | LineTooLong] = []
    for _ in range(1000):
        reports.extend(decoder.feed(b"x" * 64))
        assert decoder.buffered <= 100
    assert reports == [LineTooLong(100)]
    assert decoder.skipping
    assert decoder.buffered == 0
    # the end of the long line and the next line, in one chunk
    assert decoder.feed(b"xxx\nnext\n") == [b"next"]
    assert not decoder.skipping


def test_an_oversized_line_that_grows_over_several_chunks() -> None:
    decoder = LineDecoder(max_line=10)
    assert decoder.feed(b"123456") == []
    assert decoder.feed(b"789012") == [LineTooLong(10)]
    assert decoder.feed(b"345\n") == []
    assert decoder.feed(b"fine\n") == [b"fine"]


def test_line_too_long_says_what_happened() -> None:
    assert "1024" in LineTooLong(1024).message


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LineDecoder(max_line=0)


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
def test_any_chunking_gives_back_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = LineDecoder(max_line=40)
    got: list[bytes | LineTooLong] = []
    for start, end in itertools.pairwise(points):
        got.extend(decoder.feed(stream[start:end]))
    assert got == lines
    assert decoder.buffered == 0


# -- parse_request -----------------------------------------------------------------------------


def test_a_valid_request() -> None:
    line = b'{"id": 7, "command": "install", "args": {"vsn": "2.0.0", "steps": [1, 2.5, null]}}'
    assert parse_request(line) == Request(
        id=7, command="install", args={"vsn": "2.0.0", "steps": [1, 2.5, None]}
    )


def test_whitespace_and_crlf_around_the_object_are_fine() -> None:
    assert parse_request(b'  {"id": 1, "command": "echo"}\r') == Request(id=1, command="echo")


MALFORMED = [
    # (line, the id the error carries, a fragment of its message)
    pytest.param(b"", None, "not JSON", id="empty"),
    pytest.param(b"garbage", None, "not JSON", id="garbage"),
    pytest.param(b"\x00\x01\x02", None, "not JSON", id="control-bytes"),
    pytest.param(b"\xff\xfe{}", None, "not UTF-8", id="bad-utf8"),
    pytest.param(b'{"id": 1, "command": "echo"', None, "not JSON", id="truncated"),
    pytest.param(b'{"id": 1}{"id": 2}', None, "not JSON", id="two-objects"),
    pytest.param(b"[1, 2]", None, "an array", id="array"),
    pytest.param(b'"install"', None, "a string", id="string"),
    pytest.param(b"42", None, "a number", id="number"),
    pytest.param(b"null", None, "null", id="null"),
    pytest.param(b"true", None, "a boolean", id="boolean"),
    pytest.param(b'{"id": NaN, "command": "echo"}', None, "NaN", id="nan"),
    pytest.param(
        b'{"id": 1, "command": "echo", "args": {"x": Infinity}}', None, "Infinity", id="inf"
    ),
    pytest.param(b"[" * 100_000, None, "nested too deeply", id="deep-nesting"),
    pytest.param(b'{"id": ' + b"9" * 5000 + b"}", None, "not JSON", id="huge-integer"),
    pytest.param(b'{"id": "1", "command": "echo"}', None, "id:", id="id-string"),
    pytest.param(b'{"id": true, "command": "echo"}', None, "id:", id="id-boolean"),
    pytest.param(b'{"id": 1.0, "command": "echo"}', None, "id:", id="id-float"),
    pytest.param(b'{"id": null, "command": "echo"}', None, "id:", id="id-null"),
    pytest.param(b'{"command": "echo"}', None, "id: Field required", id="id-missing"),
    pytest.param(b'{"id": 7}', 7, "command: Field required", id="command-missing"),
    pytest.param(b'{"id": 7, "command": 5}', 7, "command:", id="command-number"),
    pytest.param(b'{"id": 7, "command": "Install"}', 7, "command:", id="command-capital"),
    pytest.param(b'{"id": 7, "command": ""}', 7, "command:", id="command-empty"),
    pytest.param(b'{"id": 7, "command": "echo\\n"}', 7, "command:", id="command-newline"),
    pytest.param(b'{"id": 7, "command": "_echo"}', 7, "command:", id="command-underscore"),
    pytest.param(b'{"id": 7, "command": "' + b"a" * 65 + b'"}', 7, "command:", id="command-long"),
    pytest.param(b'{"id": 7, "command": "echo", "args": []}', 7, "args:", id="args-array"),
    pytest.param(b'{"id": 7, "command": "echo", "args": null}', 7, "args:", id="args-null"),
    pytest.param(b'{"id": 7, "command": "echo", "vsn": "2"}', 7, "vsn: Extra", id="unknown-key"),
]


@pytest.mark.parametrize(("line", "request_id", "fragment"), MALFORMED)
def test_every_malformed_line_becomes_a_bad_request_reply(
    line: bytes, request_id: int | None, fragment: str
) -> None:
    answer = parse_request(line)
    assert isinstance(answer, ErrorReply)
    assert answer.id == request_id
    assert answer.error.type == BAD_REQUEST
    assert fragment in answer.error.message
    assert encode(answer).count(b"\n") == 1  # and it can be sent back as it is


@pytest.mark.parametrize("depth", [50, 500, 990])
def test_deep_but_valid_args_never_raise(depth: int) -> None:
    line = b'{"id": 1, "command": "echo", "args": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    answer = parse_request(line)
    assert isinstance(answer, Request | ErrorReply)


@given(st.binary(max_size=200))
def test_parse_request_never_raises_on_bytes(line: bytes) -> None:
    assert isinstance(parse_request(line), Request | ErrorReply)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["id", "command", "args", "other"]), _json))
def test_parse_request_never_raises_on_objects(value: dict[str, object]) -> None:
    answer = parse_request(json.dumps(value).encode())
    assert isinstance(answer, Request | ErrorReply)


# -- parse_reply -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"garbage",
        b"[]",
        b'{"id": 1}',
        b'{"id": 1, "ok": true}',
        b'{"id": 1, "ok": false, "result": 3}',
        b'{"id": 1, "ok": true, "result": 3, "extra": 1}',
        b'{"id": 1, "progress": {"step": "x"}}',
    ],
)
def test_parse_reply_refuses_what_the_node_never_sends(line: bytes) -> None:
    with pytest.raises(ValueError, match=r"^(not|expected)"):
        parse_reply(line)


def test_parse_reply_tells_the_three_kinds_apart() -> None:
    assert isinstance(parse_reply(b'{"id": 1, "ok": true, "result": false}'), Reply)
    error = parse_reply(b'{"id": null, "ok": false, "error": {"type": "busy", "message": "m"}}')
    assert error == ErrorReply(id=None, error=ErrorInfo(type="busy", message="m"))
    progress = parse_reply(b'{"id": 1, "progress": {"step": "s", "done": 0, "total": null}}')
    assert isinstance(progress, Progress)
