"""The cyclic GC policy: ``[node.gc]`` of sys.config, and what ``gc_policy`` does with it."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

from server.errors import SpecError
from server.release import gc_policy
from server.spec.sys_config import GcSettings, read_sys_config
from tests.spec._support import assert_problem, write

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def python_gc() -> Iterator[None]:
    """Each test leaves the collector's thresholds and the policy as it found them."""
    thresholds = gc.get_threshold()
    policy = gc_policy.current()
    yield
    gc.set_threshold(*thresholds)
    gc_policy.configure(policy)


MISTAKES = [
    ("negative-refreeze", "[node.gc]\nrefreeze = -1\n", "node.gc.refreeze", "greater than"),
    ("freeze-string", '[node.gc]\nfreeze = "yes"\n', "node.gc.freeze", "bool"),
    ("two-thresholds", "[node.gc]\nthresholds = [700, 10]\n", "node.gc.thresholds", "at least 3"),
    (
        "negative-threshold",
        "[node.gc]\nthresholds = [700, -1, 10]\n",
        "node.gc.thresholds[1]",
        "greater than or equal to 0",
    ),
    ("unknown-gc-key", "[node.gc]\ngeneration = 2\n", "node.gc.generation", "unknown key"),
]


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [pytest.param(text, field, expected, id=name) for name, text, field, expected in MISTAKES],
)
def test_a_mistake_in_node_gc_is_a_spec_error_naming_the_key(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    path = write(tmp_path, text, "sys.config")
    before = gc.get_threshold()
    with pytest.raises(SpecError) as caught:
        read_sys_config(path)
    assert_problem(caught.value, path, field, expected)
    assert "\n" not in str(caught.value).split(": ", 1)[0]
    assert gc.get_threshold() == before, "nothing changed"


def test_the_defaults_freeze_and_defer_full_collections(tmp_path: Path) -> None:
    config = read_sys_config(tmp_path / "sys.config")
    assert config.node.gc == GcSettings()
    policy = gc_policy.GcPolicy.of(config.node.gc.model_dump())
    assert policy == gc_policy.GcPolicy(freeze=True, refreeze=16, defer_full=True)


def test_thresholds_are_set_when_configured(tmp_path: Path) -> None:
    path = write(tmp_path, "[node.gc]\nthresholds = [5000, 20, 30]\n", "sys.config")
    settings = read_sys_config(path).node.gc
    gc_policy.configure(gc_policy.GcPolicy.of(settings.model_dump()))
    assert gc.get_threshold() == (5000, 20, 30)


def test_no_automatic_full_collection_inside_deferred() -> None:
    gc.set_threshold(700, 10, 10)
    gc_policy.configure(gc_policy.GcPolicy())
    with gc_policy.deferred():
        young, middle, full = gc.get_threshold()
        assert (young, middle) == (700, 10)
        assert full > 1_000_000
    assert gc.get_threshold() == (700, 10, 10)
    gc_policy.configure(gc_policy.GcPolicy(defer_full=False))
    with gc_policy.deferred():
        assert gc.get_threshold() == (700, 10, 10)


def test_settle_freezes_what_survives_and_refreeze_unfreezes_first() -> None:
    gc_policy.configure(gc_policy.GcPolicy(refreeze=2))
    kept: list[list[int]] = [
        [] for _ in range(100)
    ]  # tracked objects made now, alive after the settle
    first = gc_policy.settle("a first install")
    assert first is not None
    assert not first.unfrozen
    assert gc.get_freeze_count() > len(kept)
    second = gc_policy.settle("a second install")
    assert second is not None
    assert second.unfrozen, "every second install unfreezes and collects everything first"
    assert gc.get_freeze_count() > len(kept), "then freezes again"


def test_settle_does_nothing_when_freeze_is_off() -> None:
    gc_policy.configure(gc_policy.GcPolicy(freeze=False))
    assert gc_policy.settle("an install") is None


def test_pace_defaults_to_twenty_young_collections_a_second_and_refuses_a_negative(
    tmp_path: Path,
) -> None:
    assert GcSettings().pace == 0.05
    assert gc_policy.GcPolicy.of({"pace": 0}).pace == 0.0
    path = write(tmp_path, "[node.gc]\npace = -1\n", "sys.config")
    with pytest.raises(SpecError) as info:
        read_sys_config(path)
    assert_problem(info.value, path, "node.gc.pace", "greater than or equal to 0")


async def test_the_pacer_collects_generation_0_and_every_fifth_time_generation_1() -> None:
    gc_policy.configure(gc_policy.GcPolicy(pace=0.001))
    seen: list[int] = []
    fifth = anyio.Event()

    def ticked(generation: int) -> None:
        seen.append(generation)
        if len(seen) == gc_policy.MIDDLE_EVERY * 2:
            fifth.set()

    pacer = gc_policy.start_pacing(ticked)
    assert pacer is not None
    try:
        with anyio.fail_after(10):
            await fifth.wait()
    finally:
        pacer.stop()
    assert seen == [0, 0, 0, 0, 1] * 2
    assert pacer.collections == 10
    stopped = pacer.collections
    await anyio.lowlevel.checkpoint()
    assert pacer.collections == stopped, "a stopped pacer collects no more"


async def test_no_pacer_when_the_pace_is_0_or_the_collector_is_off() -> None:
    gc_policy.configure(gc_policy.GcPolicy(pace=0.0))
    assert gc_policy.start_pacing() is None
    gc_policy.configure(gc_policy.GcPolicy(pace=0.05))
    gc.disable()
    try:
        assert gc_policy.start_pacing() is None
    finally:
        gc.enable()
