"""Pids and references between the kernel and the wire (``server.dist._identities``)."""

from __future__ import annotations

from server import kernel
from server.dist import Atom, ExternalPid, decode, encode
from server.dist._identities import KernelIdentities
from server.kernel import Node, Pid

NAME = Atom("py@localhost")
CREATION = 7


async def test_a_pid_of_an_earlier_incarnation_goes_back_out_as_it_came(node: Node) -> None:
    ids = KernelIdentities(node, NAME, CREATION)
    old = decode(encode(ExternalPid(NAME, 10, 0, CREATION - 1)), identities=ids)
    assert type(old) is Pid
    assert kernel.process_info(old) is None  # dead: it takes nothing
    assert decode(encode(ExternalPid(NAME, 10, 0, CREATION - 1)), identities=ids) is old
    # written out again (a noproc answer about it), it names the same old pid
    assert ids.pid_parts(old) == (NAME, 10, 0, CREATION - 1)
    assert decode(encode(old, identities=ids)) == ExternalPid(NAME, 10, 0, CREATION - 1)


async def test_a_pid_of_this_incarnation_goes_out_with_its_creation(node: Node) -> None:
    ids = KernelIdentities(node, NAME, CREATION)

    async def body() -> None:
        me = kernel.self()
        parts = ids.pid_parts(me)
        assert parts is not None
        assert parts[0] == NAME
        assert parts[3] == CREATION
        assert ids.pid(NAME, parts[1], parts[2], CREATION) is me
        old = ids.pid(NAME, parts[1], parts[2], CREATION - 1)  # same number, other creation
        assert old is not me
        assert ids.pid_parts(old) == (NAME, parts[1], parts[2], CREATION - 1)

    await node.run_process(body)


async def test_pids_of_earlier_incarnations_are_remembered_within_a_bound(node: Node) -> None:
    from server.dist import _identities

    ids = KernelIdentities(node, NAME, CREATION)
    first = ids.pid(NAME, 1, 0, 1)
    for number in range(2, _identities._EARLIER_MAX + 2):
        ids.pid(NAME, number, 0, 1)
    assert len(ids._earlier) == _identities._EARLIER_MAX
    # the oldest is forgotten: it goes out with the current creation, as before the fix
    assert ids.pid_parts(first) == (NAME, 1, 0, CREATION)
