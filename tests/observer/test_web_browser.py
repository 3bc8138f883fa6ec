"""The observer's page in a real headless Chromium, against a real demo node (an OS process).

One browser and one node for the module (the install test runs last: it moves the node to
1.1.0). Each test takes a screenshot of its page; with ``OBSERVER_SCREENSHOTS=1`` they go to
``docs/observer/``, the README's images. Chromium is the system's (Debian's ``chromium``),
driven by Playwright with ``executable_path``: nothing is downloaded. Without it the tests
skip, except in CI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import pytest

from server.release.package import build_package
from server.release.source_tree import SourceTree
from tests._support.erl_nodes import running_epmd
from tests._support.nodes import REPO, NodeProcess, cli, copy_demo_tree, free_port, set_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.node

#: Where each test's screenshot goes: the README's images with OBSERVER_SCREENSHOTS=1 (the
#: way to refresh them), else a scratch folder, so a test run leaves the work tree clean.
SHOTS = (
    REPO / "docs" / "observer"
    if os.environ.get("OBSERVER_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "observer-screenshots"
)
#: Each browser wait's limit (ms): a step that hangs fails fast and names itself.
STEP_MS = 15_000


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _need(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}: CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(f"{what}: install Debian's chromium and the dev extra (playwright)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    if executable is None:
        _need("no chromium found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, str]]:
    """The demo node with ``[node.observer]``, booted; and the observer's URL (token too)."""
    root = copy_demo_tree(tmp_path_factory.mktemp("observed") / "tree")
    port = free_port()
    set_port(root, port)
    with (root / "sys.config").open("a") as config:
        config.write("\n[node.observer]\nport = 0\ninterval = 0.25\n")
    build_package(SourceTree(root), "demo", "1.1.0", root / "build")
    node = NodeProcess(root, ["run"], port).start()
    try:
        node.wait_for("control: listening")  # the last service the boot starts
        url = node.control("observer")["url"]
        assert url in node.wait_for("observer at "), "the URL with its token is logged"
        yield node, url
    finally:
        node.kill()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    opened = context.new_page()
    opened.set_default_timeout(STEP_MS)
    try:
        yield opened
    finally:
        context.close()


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            status: int = r.status
            return status
    except urllib.error.HTTPError as refused:
        return refused.code


def _numbers(page: Page, column: int) -> list[float]:
    cells = page.locator(f"main tbody tr td:nth-child({column})").all_inner_texts()
    return [_seconds_or_bytes(text) for text in cells]


def _seconds_or_bytes(text: str) -> float:
    """A cell as a number: ``12``, ``3.5 s``, ``2 min 4 s``, ``4.1 KiB``."""
    words = text.split()
    if not words:
        return 0.0
    scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
    if len(words) == 2 and words[1] in scale:
        return float(words[0]) * scale[words[1]]
    total, unit = 0.0, {"s": 1, "min": 60, "h": 3600}
    for value, name in zip(words[::2], words[1::2], strict=False):
        total += float(value) * unit[name]
    return total if len(words) > 1 else float(words[0])


def test_server_observer_prints_the_url_with_its_token(observed: tuple[NodeProcess, str]) -> None:
    node, url = observed
    assert cli(node.root, "observer").stdout.strip() == url


def test_every_request_without_the_token_gets_401(
    observed: tuple[NodeProcess, str], page: Page
) -> None:
    _, url = observed
    base, token = url.split("?token=")
    for path in ("", "api/overview", "api/processes", "events?view=overview", "metrics"):
        assert _status(base + path) == 401, path
        assert _status(f"{base}{path}{'&' if '?' in path else '?'}token=wrong{token}") == 401
    assert _status(f"{base}api/kill?pid=%3C0.1.0%3E", "POST") == 401
    assert _status(f"{base}api/overview?token={token}") == 200
    response = page.goto(base)
    assert response is not None
    assert response.status == 401
    assert "token" in page.inner_text("body")


def test_the_overview_renders(observed: tuple[NodeProcess, str], page: Page) -> None:
    _, url = observed
    page.goto(url)
    page.wait_for_selector("main[data-rendered=overview]")
    assert page.inner_text("#card-release .value") == "demo 1.0.0"
    assert page.inner_text("#card-status .value") == "permanent"
    assert int(page.inner_text("#card-processes .value")) > 5
    assert int(page.inner_text("#card-in-flight .value")) >= 0
    assert page.inner_text("#card-memory .value").endswith("MiB")
    page.wait_for_selector("#card-lag")
    assert page.locator("svg.lag polyline").count() == 2
    assert page.inner_text("#connection") == "live"
    _shot(page, "overview")


def test_a_tree_expands_and_a_killed_child_is_seen_restarting(
    observed: tuple[NodeProcess, str], page: Page
) -> None:
    _, url = observed
    page.goto(url + "#trees")
    page.wait_for_selector("main[data-rendered=trees]")
    store = page.locator("details[data-key=counter] > .leaf[data-child=store]")
    assert not store.is_visible(), "collapsed at first"
    page.click("details[data-key=counter] > summary")
    store.wait_for(state="visible")
    before = store.get_attribute("data-pid")
    restarts = page.locator("details[data-key=counter] > summary .restarts")
    assert restarts.get_attribute("data-restarts") == "0"
    store.click()
    page.wait_for_selector("#detail h2:has-text('process')")
    assert "counter_store" in page.inner_text("#detail")
    page.click("#kill")
    page.wait_for_function(
        "before => { const n = document.querySelector("
        "'details[data-key=counter] > .leaf[data-child=store]');"
        " return n && n.dataset.pid !== before && n.textContent.includes('running'); }",
        arg=before,
    )
    assert restarts.get_attribute("data-restarts") == "1"
    assert page.locator("details[data-key=counter]").get_attribute("open") is not None
    _shot(page, "trees")


def test_the_process_list_sorts_by_each_column_and_shows_a_detail(
    observed: tuple[NodeProcess, str], page: Page
) -> None:
    _, url = observed
    page.goto(url + "#processes")
    page.wait_for_selector("main[data-rendered=processes]")
    for key, column in (("age", 8), ("handled", 6), ("memory", 7), ("mailbox", 5)):
        page.click(f"th[data-sort={key}]")
        page.wait_for_selector(f"th.sorted[data-sort={key}]")
        if key == "mailbox":  # mailbox was the sort already: a click turns it around
            page.click(f"th[data-sort={key}]")
        values = _numbers(page, column)
        assert values == sorted(values, reverse=True), key
    page.click("th[data-sort=age]")
    page.click("th[data-sort=age]")  # youngest first
    page.wait_for_selector("main p:has-text('sorted by age')")
    values = _numbers(page, 8)
    assert values == sorted(values)
    page.click("main tbody tr:has-text('counter_store')")
    page.wait_for_selector("#detail h2")
    assert "counter.store" in page.inner_text("#detail")
    page.click("#show-state")
    state = page.wait_for_selector("#state")
    assert state is not None
    assert state.inner_text() != ""
    _shot(page, "processes")


def test_code_and_releases_render(observed: tuple[NodeProcess, str], page: Page) -> None:
    _, url = observed
    for view, expected in (("code", "counter.store"), ("releases", "permanent")):
        page.goto(f"{url}#{view}")
        page.wait_for_selector(f"main[data-rendered={view}]")
        assert expected in page.inner_text("main")
    page.goto(f"{url}#code")
    page.wait_for_selector("main[data-rendered=code]")
    _shot(page, "code")  # the releases view is shot during the install


def _control(target: NodeProcess, command: str, **args: str) -> Any:
    """A control request from a thread of its own: the browser's driver holds this one's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: target.control(command, 60.0, **args)).result(timeout=90)


def _distributed(root: Path, alive: str, epmd_port: int) -> None:
    with (root / "sys.config").open("a") as config:
        config.write(
            f'\n[node.dist]\nname = "{alive}@localhost"\ncookie = "observer-test-cookie"\n'
            f"epmd_port = {epmd_port}\nstart_epmd = false\n"
        )


def test_the_nodes_view_shows_each_connected_node_and_its_release(
    tmp_path: Path, page: Page
) -> None:
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_epmd()) as epmd,
    ):
        roots = []
        for alive in ("a", "b"):
            root = copy_demo_tree(tmp_path / alive)
            set_port(root, free_port())
            _distributed(root, alive, epmd.port)
            roots.append(root)
        with (roots[0] / "sys.config").open("a") as config:
            config.write("\n[node.observer]\nport = 0\ninterval = 0.25\n")
        nodes = [NodeProcess(root, ["run"], 0).start() for root in roots]
        try:
            for node in nodes:
                node.wait_for("control: listening")
            assert _control(nodes[0], "connect", node="b@localhost")["connected"] is True
            page.goto(_control(nodes[0], "observer")["url"] + "#nodes")
            page.wait_for_selector("main[data-rendered=nodes]")
            page.wait_for_selector("main td:text-is('b@localhost')")
            rows = page.locator("main tbody tr").all_inner_texts()
            assert [row.split()[:3] for row in rows] == [
                ["a@localhost", "1.0.0", "1.0.0"],
                ["b@localhost", "1.0.0", "1.0.0"],
            ]
            _shot(page, "nodes")
        finally:
            for node in nodes:
                node.kill()


def test_an_install_shows_its_progress_live(observed: tuple[NodeProcess, str], page: Page) -> None:
    node, url = observed
    page.goto(url + "#releases")
    page.wait_for_selector("main[data-rendered=releases]")
    page.evaluate("window.sameDocument = true")
    assert page.locator("#install").is_hidden()
    answer: dict[str, Any] = {}

    def upgrade() -> None:
        answer.update(node.control("upgrade", package=str(node.root / "build/demo-1.1.0.tar.gz")))

    installing = threading.Thread(target=upgrade)
    installing.start()
    try:
        page.wait_for_selector("#install[data-outcome=done]")
    finally:
        installing.join(60)
    assert answer["vsn"] == "1.1.0"
    log = page.inner_text("#install-log")
    for step in ("suspend", "load", "code_change", "resume"):
        assert step in log, step
    assert "1.0.0 → 1.1.0: done" in page.inner_text("#install-title")
    page.wait_for_selector("main tr[data-vsn='1.1.0'][data-status=permanent]")
    page.wait_for_selector("#node:has-text('demo 1.1.0')")
    assert page.evaluate("window.sameDocument") is True, "pushed, never reloaded"
    _shot(page, "install")
