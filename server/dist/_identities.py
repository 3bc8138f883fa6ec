"""Pids and references between the kernel and the wire (the codec's ``Identities``).

- A pid of this node is written with this node's name and creation, its number split into
  the 32-bit id and serial of ``NEW_PID_EXT``; read back, it is the process's own ``Pid``
  (or a dead pid when that process has ended, or when it names an earlier incarnation).
  A dead pid of an earlier incarnation keeps the creation it came with, so it goes back
  out as it came: a peer that monitors or links to such a pid gets ``noproc`` about the
  very pid it named (``{'DOWN', Ref, process, Old, noproc}`` matches ``Old``).
- A pid of another node is that node's interned ``Pid`` (``RemoteNode.pid``), so the same
  remote process is always the same object.
- A reference of this node is written as three words (18 + 32 + 32 bits of its number)
  and remembered weakly, so the one that comes back (a monitor's ``MONITOR_P_EXIT``, a
  call's alias) is the very ``Ref`` the kernel holds. A reference of another node stays an
  ``ExternalRef`` value (equal by value, hashable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

from server.dist.terms import Atom, ExternalRef
from server.kernel import Pid, Ref

if TYPE_CHECKING:
    from server.kernel import Node

__all__ = ["KernelIdentities"]

_ID_BITS = 0xFFFFFFFF
#: How many pids of earlier incarnations keep their creation at once (oldest forgotten).
_EARLIER_MAX = 1024


@final
class KernelIdentities:
    """The codec's view of the kernel's pids and refs, for a node called ``name``."""

    def __init__(self, kernel_node: Node, name: str, creation: int) -> None:
        self.kernel_node = kernel_node
        self.name = Atom(name)
        self.creation = creation
        #: pids of earlier incarnations of this node, by (number, creation), and back
        self._earlier: dict[tuple[int, int], Pid] = {}
        self._earlier_creation: dict[int, int] = {}

    def pid(self, node: Atom, id: int, serial: int, creation: int) -> object:  # noqa: A002
        """The kernel pid a ``NEW_PID_EXT`` names."""
        if node == self.name:
            number = id | serial << 32
            if creation != self.creation:
                return self._earlier_pid(number, creation)
            return self.kernel_node.local_pid(number)
        return self.kernel_node.remote_node(str(node)).pid(id, serial, creation)

    def _earlier_pid(self, number: int, creation: int) -> Pid:
        key = (number, creation)
        pid = self._earlier.get(key)
        if pid is None:
            if len(self._earlier) >= _EARLIER_MAX:
                oldest = self._earlier.pop(next(iter(self._earlier)))
                del self._earlier_creation[id(oldest)]
            pid = self._earlier[key] = self.kernel_node.dead_pid(number)
            self._earlier_creation[id(pid)] = creation
        return pid

    def ref(self, node: Atom, creation: int, words: tuple[int, ...]) -> object:
        """The reference a ``NEWER_REFERENCE_EXT`` names."""
        if node == self.name and creation == self.creation and 1 <= len(words) <= 3:
            number = words[0] & 0x3FFFF
            if len(words) > 1:
                number |= words[1] << 18
            if len(words) > 2:
                number |= words[2] << 50
            return self.kernel_node.local_ref(number)
        return ExternalRef(node, creation, words)

    def pid_parts(self, value: object) -> tuple[Atom, int, int, int] | None:
        """``(node, id, serial, creation)`` of a kernel pid, or None for other values."""
        if type(value) is not Pid:
            return None
        node, id_, serial, creation = self.kernel_node.pid_parts(value)
        if node is None:
            creation = self._earlier_creation.get(id(value), self.creation)
            return self.name, id_, serial & _ID_BITS, creation
        return Atom(node), id_, serial, creation

    def ref_parts(self, value: object) -> tuple[Atom, int, tuple[int, ...]] | None:
        """``(node, creation, words)`` of a reference, or None for other values."""
        if type(value) is Ref:
            number = self.kernel_node.export_ref(value)
            words = (number & 0x3FFFF, (number >> 18) & _ID_BITS, (number >> 50) & _ID_BITS)
            return self.name, self.creation, words
        if type(value) is ExternalRef:
            return value.node, value.creation, value.words
        return None
