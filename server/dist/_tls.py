"""TLS for the distribution: both ends authenticate with certificates (Erlang's inet_tls).

Threat model. The cookie handshake is an MD5 challenge: it stops a peer that does not know
the cookie, but anyone who can read the traffic sees every message, and anyone who can
reach the port and learns the cookie can run whatever ``rpc_allow`` lists and send any
process any message. Without TLS, run the distribution on loopback or on a private network
only. With ``[node.dist.tls]``, every connection is TLS from its first byte, both sides
present a certificate and check the other's against ``cafile`` (so only holders of a key
the cluster's CA signed can connect), and the traffic is encrypted; the cookie still has
to match. EPMD stays plain (it only maps names to ports, as in Erlang).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, final

from server.errors import DistributionError

if TYPE_CHECKING:
    from server.spec import DistTlsSettings

__all__ = ["TlsContexts"]


@final
class TlsContexts:
    """The server and client ``SSLContext`` of this node, built once from the settings.

    Raises:
        DistributionError: a certificate, key or CA file cannot be read or does not match.
    """

    def __init__(self, settings: DistTlsSettings) -> None:
        self.check_hostname = settings.check_hostname
        try:
            self.server = ssl.create_default_context(
                ssl.Purpose.CLIENT_AUTH, cafile=settings.cafile
            )
            self.server.load_cert_chain(settings.certfile, settings.keyfile)
            self.client = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=settings.cafile
            )
            self.client.load_cert_chain(settings.certfile, settings.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise DistributionError(f"[node.dist.tls] cannot be used: {exc}") from None
        self.server.minimum_version = self.client.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.verify_peer:
            self.server.verify_mode = ssl.CERT_REQUIRED
        else:
            self.server.verify_mode = ssl.CERT_NONE
            self.client.verify_mode = ssl.CERT_NONE
        self.client.check_hostname = settings.check_hostname and settings.verify_peer
