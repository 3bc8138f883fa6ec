"""Send a release package to the release agents of several nodes, and have them unpack it.

The chunks (``_transfer.PackageFiles.chunks``) go to every node at once, one call per chunk
and node, in order; a node that refuses a chunk or is lost drops out, the others go on. The
nodes that received the whole package are then asked to unpack it (checksum, signature,
then the archive, by each node's own release handler).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from server.cluster._calls import Answer, ask
from server.dist import Atom

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from server.cluster._transfer import PackageFiles

__all__ = ["send_package"]

CHUNK_TIMEOUT: Final = 60.0
UNPACK_TIMEOUT: Final = 300.0


async def send_package(
    files: PackageFiles,
    nodes: Iterable[str],
    *,
    on_chunk: Callable[[int], None] | None = None,
    on_unpack: Callable[[list[str]], None] | None = None,
) -> dict[str, tuple[str, Answer]]:
    """Each node's last step (``copy`` or ``unpack``) and its answer (the vsn when unpacked).

    ``on_chunk`` is told the bytes sent so far, ``on_unpack`` the nodes about to unpack.
    """
    name = files.path.name
    results: dict[str, tuple[str, Answer]] = {}
    receiving = list(nodes)
    for offset, chunk in files.chunks():
        if not receiving:
            break
        request = (Atom("package_chunk"), name, offset, chunk)
        for node, answer in (
            await ask(dict.fromkeys(receiving, request), timeout=CHUNK_TIMEOUT)
        ).items():
            if not answer.ok:
                results[node] = ("copy", answer)
        receiving = [node for node in receiving if node not in results]
        if on_chunk is not None:
            on_chunk(offset + len(chunk))
    if receiving:
        if on_unpack is not None:
            on_unpack(receiving)
        unpack = (Atom("package_unpack"), name, files.sha256, files.signature)
        for node, answer in (
            await ask(dict.fromkeys(receiving, unpack), timeout=UNPACK_TIMEOUT)
        ).items():
            results[node] = ("unpack", answer)
    return results
