"""The release handler answers with typed replies whose refusals carry plain facts; the API
builds each exception in the caller's process (no frame of the handler or its workers)."""

from __future__ import annotations

import math
import traceback
from typing import TYPE_CHECKING

import pytest

from server.behaviours import gen_server
from server.behaviours.replies import Refused
from server.errors import (
    InstallFailed,
    InstallRefused,
    ReleaseError,
    ServerError,
    SpecError,
    UnpackError,
    UnsignedPackage,
    UntrustedSigner,
)
from server.release import handler
from tests.behaviours._helpers import within
from tests.release._live import boot_demo, stop_demo

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from pathlib import Path

    from server.kernel import Node

SERVER_SIDE = ("_handler.py", "unpack.py", "installed.py", "_installer.py")


def raised_by_the_api(error: BaseException) -> None:
    files = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
    assert files[-1].endswith("release/handler.py"), files
    assert not [f for f in files if f.endswith(SERVER_SIDE)], files


async def test_each_error_is_built_in_the_caller(
    node: Node, demo_tree: Path, tmp_path: Path
) -> None:
    async def run() -> None:
        demo = await boot_demo(demo_tree, tmp_path / "packages")
        try:
            record = (demo.root / "releases" / "RELEASES").read_bytes()
            rows = await handler.which_releases()
            cases: list[tuple[type[ServerError], Awaitable[object]]] = [
                (UnpackError, handler.unpack(tmp_path / "demo-9.9.9.tar.gz")),
                (InstallRefused, handler.check_install("9.9.9")),
                (InstallRefused, handler.remove("1.0.0")),
                (InstallRefused, handler.make_permanent("9.9.9")),
                (InstallRefused, handler.rollback()),
            ]
            for expected, call in cases:
                with pytest.raises(expected) as info:
                    await within(call, repr(call), 30)
                assert type(info.value) is expected
                raised_by_the_api(info.value)
            assert (demo.root / "releases" / "RELEASES").read_bytes() == record, "unchanged"
            assert await handler.which_releases() == rows
            await within(handler.unpack(demo.package("2.0.0")), "unpack", 30)
            (demo.root / "releases" / "2.0.0" / "release.toml").unlink()
            with pytest.raises(ReleaseError, match=r"release\.toml is missing") as missing:
                await within(handler.check_install("2.0.0"), "check_install", 30)
            assert type(missing.value) is ReleaseError
            raised_by_the_api(missing.value)
            answer = await gen_server.call(handler.NAME, handler.Remove("1.0.0"), timeout=math.inf)
            assert isinstance(answer, Refused)
            assert isinstance(answer.reason, handler.ErrorFacts)
            assert answer.reason.kind == "InstallRefused"
            assert "permanent release" in answer.reason.message
            assert len(await handler.which_releases()) == len(rows) + 1
        finally:
            await stop_demo(demo)

    await node.run_process(run)


ERRORS: list[ServerError] = [
    InstallRefused("busy"),
    UnpackError("p.tar.gz", "bad member", "lib/x"),
    UnsignedPackage("p.tar.gz", "p.tar.gz.sig"),
    UntrustedSigner("p.tar.gz", "p.tar.gz.sig", "a2V5"),
    ReleaseError("release 2: missing"),
    SpecError("a.toml", [("vsn", "missing")]),
    InstallFailed("2", "code_change", "rolled_back", "boom", pid="<0.1>", module="m"),
]


@pytest.mark.parametrize("error", ERRORS, ids=[type(e).__name__ for e in ERRORS])
def test_facts_are_plain_and_rebuild_the_same_error(error: ServerError) -> None:
    facts = handler.facts_of(error)
    assert all(
        isinstance(v, str | int | float | bool | list | tuple | None) for _, v in facts.fields
    )
    rebuilt = handler.error_of(facts)
    assert (type(rebuilt), str(rebuilt)) == (type(error), str(error))
    assert vars(rebuilt) == vars(error)


def test_what_is_not_facts_is_refused() -> None:
    with pytest.raises(TypeError):
        handler.error_of(("error", "a bare tuple"))
    unknown = handler.ErrorFacts("NoSuchError", "text", ())
    assert (type(handler.error_of(unknown)), str(handler.error_of(unknown))) == (
        ReleaseError,
        "text",
    )
