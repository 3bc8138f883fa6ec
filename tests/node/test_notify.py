"""Readiness notification: one datagram to NOTIFY_SOCKET, as systemd's sd_notify reads it."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from server.node import NOTIFY_ENV, notify

if TYPE_CHECKING:
    from pathlib import Path


def test_a_state_goes_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        assert notify("READY=1\nSTATUS=serving", {NOTIFY_ENV: str(path)})
        assert listener.recv(1024) == b"READY=1\nSTATUS=serving"


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"server-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        assert notify("STOPPING=1", {NOTIFY_ENV: "@" + name})
        assert listener.recv(1024) == b"STOPPING=1"


def test_without_notify_socket_nothing_is_sent_and_a_dead_one_is_survived(tmp_path: Path) -> None:
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {NOTIFY_ENV: str(tmp_path / "nobody")}) is False
