"""The link protocol with unlink ids, against its rule table (reference §1.6), by Hypothesis.

A model holds, for one local process and one remote process, the link's *active* bit and
the id of an unlink waiting for its acknowledgement; random sequences of the six events
drive the kernel and the model side by side, and after each step the kernel's link (and
what it sent, and whether an exit was acted upon) must be the model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from server import kernel
from server.kernel import ExitMessage, Node
from tests.kernel.test_remote import PEER, FakeDistribution, Recording

EVENTS = st.lists(
    st.sampled_from(
        ["link", "unlink", "in_link", "in_unlink", "in_ack", "in_ack_other", "in_exit"]
    ),
    max_size=25,
)


@dataclass
class Model:
    active: bool = False
    pending: int | None = None  # our unlink waiting for its ack
    last_sent_id: int | None = None

    def step(self, event: str) -> tuple[bool, bool]:
        """Apply ``event``; returns (an ACK must be sent, an exit must be acted upon)."""
        if event == "link":  # LINK sent: create or re-activate, forget a pending unlink
            self.active, self.pending = True, None
        elif event == "unlink":  # UNLINK_ID sent only while active
            if self.active:
                self.active = False
                self.pending = (self.last_sent_id or 0) + 1
                self.last_sent_id = self.pending
        elif event == "in_link":  # a LINK makes a link only if there is none at all
            if not self.active and self.pending is None:
                self.active = True
        elif event == "in_unlink":  # removes an active link; always acknowledged
            self.active = False
            return True, False
        elif event == "in_ack":  # the ack of our pending unlink ends it
            self.pending = None
        elif event == "in_ack_other":  # an ack of another id changes nothing
            pass
        elif event == "in_exit":  # acted upon only over an active link, which it ends
            acted = self.active
            self.active = False
            return False, acted
        return False, False


@settings(max_examples=150, deadline=None)
@given(events=EVENTS)
def test_the_kernel_follows_the_link_rules(events: list[str]) -> None:
    async def main() -> None:
        async with Node(name="rules") as node:
            node.distribution = FakeDistribution()
            remote = node.remote_node(PEER)
            channel = Recording()
            remote.attach(channel, 7, hidden=True)
            pid = remote.pid(5, 0, 7)

            async def body() -> None:
                me = kernel.self()
                kernel.trap_exit(True)
                model = Model()
                for event in events:
                    sent_before = len(channel.calls)
                    if event == "link":
                        kernel.link(pid)
                    elif event == "unlink":
                        kernel.unlink(pid)
                    elif event == "in_link":
                        remote.incoming_link(pid, me)
                    elif event == "in_unlink":
                        remote.incoming_unlink(99, pid, me)
                    elif event in ("in_ack", "in_ack_other"):
                        pending = model.pending or 0
                        wrong = pending + 1000
                        remote.incoming_unlink_ack(pending if event == "in_ack" else wrong, pid, me)
                    elif event == "in_exit":
                        remote.incoming_exit(pid, me, "boom", from_link=True)
                    must_ack, acted = model.step(event)
                    info = kernel.process_info(me)
                    assert info is not None
                    assert (pid in info.links) == model.active, (event, model)
                    pending_ids = list(remote.unlinking.values())
                    assert pending_ids == ([model.pending] if model.pending else []), event
                    new = channel.calls[sent_before:]
                    if must_ack:
                        assert ("unlink_ack", 99, me, pid) in new
                    if event == "unlink" and model.pending is not None and new:
                        assert new[-1][0] == "unlink"
                    got = kernel.flush(lambda m: type(m) is ExitMessage)
                    assert got == (1 if acted else 0), (event, model)

            try:
                await node.run_process(body)
            finally:
                node.distribution = None

    anyio.run(main, backend="asyncio")
