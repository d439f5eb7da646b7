"""The explorer in headless Chromium: load the round page, click to a peer, then to one of its
transactions, and check what each page shows against the chain; save the round page's picture.

Set BCFL_UPDATE_SCREENSHOT=1 to (re)write docs/explorer-round.png, the README's screenshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from bcfl.chain.devnet import DevnetInfo
from bcfl.explorer.app import Explorer, ExplorerConfig
from tests.browser.browser import chromium, full_page_png
from tests.integration.test_explorer_support import Devnet, build_federation

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "explorer-round.png"


@pytest.fixture(scope="module")
def devnet(anvil: DevnetInfo, w3: Web3, tmp_path_factory: pytest.TempPathFactory) -> Devnet:
    return build_federation(w3, anvil.rpc_url, tmp_path_factory.mktemp("fed"), peers=5, rounds=3)


@pytest.fixture(scope="module")
def explorer(devnet: Devnet) -> Iterator[Explorer]:
    app = Explorer(
        ExplorerConfig(rpc_url=devnet.rpc_url, deployment=devnet.record_path, port=0, poll_interval=0.2),
        storage=devnet.storage,
    )
    app.start()
    try:
        app.wait_synced(timeout=30)
        app.wait_enriched(timeout=60)
        yield app
    finally:
        app.stop()


def test_click_from_round_to_peer_to_transaction(devnet: Devnet, explorer: Explorer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    fed, w3 = devnet.fed, devnet.w3
    with chromium() as driver:
        driver.get(explorer.url + "/")
        driver.find_element(By.CSS_SELECTOR, 'table.rounds a[href="/round/2"]').click()
        assert driver.current_url.endswith("/round/2")
        assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Round 2")

        final = fed.finalisation(2)
        assert final is not None
        body = driver.find_element(By.TAG_NAME, "body").text
        assert final.aggregate.cid in body and "finalised" in body
        rows = driver.find_elements(By.CSS_SELECTOR, "table.submissions tbody tr")
        subs = fed.submissions(2)
        assert len(rows) == len(subs) == 5
        for row, sub in zip(rows, subs, strict=True):
            assert row.find_element(By.CSS_SELECTOR, ".cid").get_attribute("title") == sub.cid
            assert sub.peer == row.find_element(By.CSS_SELECTOR, "a.peer").get_attribute("title")
        settled = {s.peer: s for s in fed.settlements() if s.round == 2}
        gates = [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows]
        assert gates == ["included" if settled[s.peer].included else "excluded" for s in subs]
        assert gates.count("excluded") == 1

        png = full_page_png(driver)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
        (tmp_path / "explorer-round.png").write_bytes(png)
        if os.environ.get("BCFL_UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            SCREENSHOT.write_bytes(png)

        # Round -> peer: the first submitter's page shows its on-chain reputation and bond.
        peer = subs[0].peer
        rows[0].find_element(By.CSS_SELECTOR, "a.peer").click()
        assert driver.current_url.endswith(f"/peer/{peer}")
        info = fed.peer(peer)
        assert driver.find_element(By.ID, "reputation").text == f"{info.reputation / 1e6:.3f}"
        assert peer in driver.find_element(By.TAG_NAME, "h1").text
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline")

        # Peer -> transaction: its round-2 submission, decoded, with the receipt's gas.
        tx_rows = driver.find_elements(By.CSS_SELECTOR, "table.transactions tbody tr")
        row = next(r for r in tx_rows if "submitUpdate" in r.text and "round 2" in r.text)
        row.find_element(By.CSS_SELECTOR, "a.tx").click()
        assert driver.current_url.endswith(f"/tx/{subs[0].tx_hash}")
        assert driver.find_element(By.ID, "tx-function").text == "submitUpdate"
        assert driver.find_element(By.ID, "tx-hash").text == subs[0].tx_hash
        receipt = w3.eth.get_transaction_receipt(subs[0].tx_hash)
        assert driver.find_element(By.ID, "tx-gas").text == f"{receipt['gasUsed']:,}"
        events = [e.text.split()[0] for e in driver.find_elements(By.CSS_SELECTOR, "h3.event")]
        assert events == ["UpdateSubmitted"]


def test_error_page_renders_the_message(explorer: Explorer) -> None:
    from selenium.webdriver.common.by import By

    with chromium() as driver:
        driver.get(explorer.url + "/round/999")
        assert "round 999 does not exist" in driver.find_element(By.ID, "error-message").text
