"""The distribution over TLS (``-proto_dist inet_tls``) with a real erl, both ways.

Both nodes hold a certificate of the test's CA; a node whose certificate another CA signed
is refused both ways, before any distribution message is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from server import dist, kernel
from server.behaviours import gen_server
from tests._support.certs import NodeCert, make_authority
from tests._support.erl_shell import running_erl_shell
from tests._support.waits import step
from tests.dist.conftest import COOKIE, distributed, settings

if TYPE_CHECKING:
    from pathlib import Path

    from server.kernel import Node
    from tests._support.erl_nodes import Epmd

pytestmark = pytest.mark.timeout(120)

PY = "py@localhost"
E1 = "e1@localhost"


def _erl_tls_args(cert: NodeCert, directory: Path) -> list[str]:
    files = (
        f'{{certfile, "{cert.certfile}"}}, {{keyfile, "{cert.keyfile}"}}, '
        f'{{cacertfile, "{cert.cafile}"}}, {{verify, verify_peer}}'
    )
    options = f"[{{server, [{files}, {{fail_if_no_peer_cert, true}}]}}, {{client, [{files}]}}]."
    optfile = directory / "ssl_dist.conf"
    optfile.write_text(options)
    return ["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile)]


def _tls(cert: NodeCert) -> dict[str, object]:
    return {
        "certfile": str(cert.certfile),
        "keyfile": str(cert.keyfile),
        "cafile": str(cert.cafile),
    }


async def test_tls_distribution_with_erl_both_ways(node: Node, epmd: Epmd, tmp_path: Path) -> None:
    authority = make_authority(tmp_path)
    py_cert, erl_cert = authority.issue("py"), authority.issue("e1")

    async def body() -> None:
        async with (
            distributed(settings(epmd, tls=_tls(py_cert))),
            running_erl_shell(
                "e1",
                epmd=epmd,
                cookie=COOKIE,
                home=tmp_path,
                extra_args=_erl_tls_args(erl_cert, tmp_path),
            ) as erl,
        ):
            pid = await gen_server.start("tests.dist._targets", None, name="echo")
            assert pid is not None
            assert await erl.eval(f"net_adm:ping('{PY}')") == "pong"
            assert (
                await erl.eval(f"gen_server:call({{echo, '{PY}'}}, over_tls)") == "{echo,over_tls}"
            )
            await dist.disconnect_node(E1)
            with step("Python dials erl over TLS"):
                assert await dist.rpc_call(E1, "erlang", "node") == E1

    await node.run_process(body)


async def test_a_certificate_of_another_ca_is_refused_both_ways(
    node: Node, epmd: Epmd, tmp_path: Path
) -> None:
    ours, theirs = make_authority(tmp_path, "ours"), make_authority(tmp_path, "theirs")
    py_cert = ours.issue("py")
    stranger = theirs.issue("e1")

    async def body() -> None:
        async with (
            distributed(settings(epmd, tls=_tls(py_cert))),
            running_erl_shell(
                "e1",
                epmd=epmd,
                cookie=COOKIE,
                home=tmp_path,
                extra_args=_erl_tls_args(stranger, tmp_path),
            ) as erl,
        ):
            assert await erl.eval(f"net_adm:ping('{PY}')", limit=20) == "pang"
            with step("Python dials a node of another CA", 20):
                assert await dist.ping(E1) is False
            assert kernel.nodes("connected") == []

    await node.run_process(body)
