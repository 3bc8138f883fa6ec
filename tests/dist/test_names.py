"""Node names: alive@host, short and long, the default host part, the errors."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from server.dist.names import NodeName, default_host
from server.errors import NodeNameError


@pytest.mark.parametrize(
    ("text", "alive", "host"),
    [("py@localhost", "py", "localhost"), ("a_b-1@vm", "a_b-1", "vm"), ("X@h-1", "X", "h-1")],
)
def test_short_names(text: str, alive: str, host: str) -> None:
    name = NodeName.parse(text)
    assert (name.alive, name.host) == (alive, host)
    assert str(name) == text
    assert not name.is_long


@pytest.mark.parametrize(
    "text", ["py@vm.example.org", "py@127.0.0.1", "py@::1", "py@10.0.0.2", "py@a.b"]
)
def test_long_names(text: str) -> None:
    name = NodeName.parse(text, long=True)
    assert name.is_long
    assert str(name) == text


def test_a_short_name_with_dots_is_refused_saying_what_to_do() -> None:
    with pytest.raises(NodeNameError, match=r"short name .* py@vm or a long name"):
        NodeName.parse("py@vm.example.org")


def test_a_long_name_without_a_domain_is_refused_saying_what_to_do() -> None:
    with pytest.raises(NodeNameError, match=r"long name .*fully qualified"):
        NodeName.parse("py@vm", long=True)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("@vm", "before '@'"),
        ("p y@vm", "before '@'"),
        ("a" * 256 + "@vm", "before '@'"),
        ("py@", "host part"),
        ("py@h st", "host part"),
        ("py@vm@x", "exactly one '@'"),
        ("py@a..b", "empty label"),
        ("py@.a", "empty label"),
        ("py@a:b", "host part"),
    ],
)
def test_malformed_names(text: str, fragment: str) -> None:
    with pytest.raises(NodeNameError, match=fragment) as caught:
        NodeName.parse(text, long=True)
    assert caught.value.name.startswith(text.split("@")[0])


def test_the_default_short_host_is_the_host_name_up_to_its_first_dot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "box.example.org")
    assert default_host(long=False) == "box"
    assert NodeName.parse("py") == NodeName("py", "box")


def test_the_default_long_host_is_the_fqdn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda: "box.example.org")
    assert NodeName.parse("py", long=True) == NodeName("py", "box.example.org")


def test_no_default_long_host_without_a_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda: "box")
    with pytest.raises(NodeNameError, match="explicit host part"):
        default_host(long=True)


def test_node_names_are_frozen_values() -> None:
    name = NodeName("py", "localhost")
    assert name == NodeName.parse("py@localhost")
    assert hash(name) == hash(NodeName("py", "localhost"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        name.alive = "other"  # type: ignore[misc]


def test_construction_validates() -> None:
    with pytest.raises(NodeNameError):
        NodeName("", "vm")
