"""The connect and invitation pages in headless Chromium, with a wallet whose signatures come from a real anvil node:
the whole GATEKEEPER flow as the counterparty lives it (keyboard only), its refusals in plain words, a 375 px screen.

One Chromium serves the module (a fresh browser context per test); the pages run against the real local server
(and, for the flow and the refusal of a wrong link, against workerd too)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from local.anvil import AnvilNode
from local.config import PROJECT_ROOT
from tests.conftest import ADMIN_TOKEN, BASE_VARS, use_local_chain_only
from tests.support.browser import AnvilWallet, Browser, Page, install_wallet
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow
ARTIFACTS = PROJECT_ROOT / "artifacts"
ETH = 10**18
LOCAL_CHAIN = "eip155:31337"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium = Browser(tmp_path_factory.mktemp("chromium")).start()
    yield chromium
    chromium.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, anvil: AnvilNode) -> Iterator[LiveServer]:
    """The local server as `make dev` runs it, on the shared anvil chain (one for the module)."""
    live = LiveServer(tmp_path_factory.mktemp("pages"), use_local_chain_only(dict(BASE_VARS), anvil.url)).start()
    yield live
    live.stop()


@pytest.fixture
def env_vars(anvil: AnvilNode) -> dict[str, str]:
    """For `live_server`: the chain-backed configuration (in workerd, the Worker the other e2e suites share)."""
    return use_local_chain_only(dict(BASE_VARS), anvil.url)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    tab = browser.new_page()
    yield tab
    tab.close()


def sign(message: str, key: bytes) -> str:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.hex()
    return signature if signature.startswith("0x") else "0x" + signature


class Deal:
    """A creator (API key, verified wallet with funds) who sends a GATEKEEPER challenge to a wallet."""

    def __init__(self, base_url: str, chain: AnvilNode) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.chain = chain
        issued = self.http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert issued.status_code == 201, issued.text
        self.creator_id, self.key = issued.json()["user_id"], issued.json()["api_key"]
        self.wallet = Account.create()
        chain.set_balance(self.wallet.address, 3 * ETH)
        created = self.post("/gatekeeper/v2/wallet/challenge", wallet_address=self.wallet.address, chain_id=LOCAL_CHAIN)
        verified = self.post(
            "/gatekeeper/v2/wallet/verify",
            challenge_id=created["challenge_id"],
            signature=sign(created["message"], self.wallet.key),
        )
        assert verified["user_id"] == self.creator_id

    def post(self, path: str, **body: Any) -> dict[str, Any]:
        answer = self.http.post(path, json=body, headers={"authorization": f"Bearer {self.key}"})
        assert answer.status_code in {200, 201}, answer.text
        return dict(answer.json())

    def send(self, counterparty_wallet: str, *, title: str = "Sell 3 GPUs for 2 ETH", **invite: Any) -> str:
        check = {"asset_type": "NATIVE", "min_balance": str(ETH), "currency_symbol": "ETH"}
        body = {
            "mode": "GATEKEEPER",
            "title": title,
            "description": "Creator ships 3 GPUs; counterparty pays 2 ETH on delivery.",
            "gatekeeper_requirements": {
                "creator": {"wallet_address": self.wallet.address, "network": "local", "funds_checks": [check]},
                "counterparty": {"wallet_address": counterparty_wallet, "network": "local", "funds_checks": [check]},
            },
            **(invite or {"counterparty_wallet": counterparty_wallet}),
        }
        challenge_id = str(self.post("/challenges", **body)["id"])
        assert self.post(f"/challenges/{challenge_id}/send")["status"] == "AWAITING_COUNTERPARTY"
        return challenge_id

    def invite_url(self, challenge_id: str) -> str:
        """The link as emailed (PUBLIC_BASE_URL …), pointed at this server."""
        answer = self.http.get(
            f"/challenges/{challenge_id}/invitation", headers={"authorization": f"Bearer {self.key}"}
        )
        assert answer.status_code == 200, answer.text
        parts = urlsplit(answer.json()["invite_url"])
        return f"{self.base_url}{parts.path}?{parts.query}"

    def status(self, challenge_id: str) -> str:
        answer = self.http.get(f"/challenges/{challenge_id}", headers={"authorization": f"Bearer {self.key}"})
        return str(answer.json()["status"])

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def deal(server: LiveServer, chain: AnvilNode) -> Iterator[Deal]:
    made = Deal(server.url, chain)
    yield made
    made.close()


def counterparty_wallet(chain: AnvilNode, index: int = 1, **options: Any) -> AnvilWallet:
    """One of anvil's unlocked dev accounts: the node itself signs for it."""
    account = chain.accounts[index]
    chain.set_balance(account, 5 * ETH)
    return AnvilWallet(chain.url, account, **options)


def open_invite(page: Page, wallet: AnvilWallet, url: str, **install: bool) -> None:
    install_wallet(page, wallet, **install)
    page.navigate(url)
    page.wait_for("document.body.dataset.state === 'idle'")


def connect_and_sign(page: Page) -> None:
    page.evaluate("document.getElementById('connect').click()")
    page.wait_for("document.body.dataset.state === 'message'")
    page.evaluate("document.getElementById('sign').click()")
    page.wait_for("document.body.dataset.state === 'verified'")


# ---- the whole flow


def test_counterparty_accepts_with_only_a_browser_wallet(browser: Browser, live_server: Any, chain: AnvilNode) -> None:
    """Open the emailed link, connect, read and sign the exact message, accept: INTENT_LOCKED. Keyboard only."""
    deal = Deal(live_server.url, chain)
    wallet = counterparty_wallet(chain)
    challenge_id = deal.send(wallet.account)
    page = browser.new_page()
    try:
        open_invite(page, wallet, deal.invite_url(challenge_id), legacy=False)  # found by EIP-6963 alone
        assert "Sell 3 GPUs for 2 ETH" in page.text("h1")
        assert page.text("#no-wallet") == "Wallet found: Anvil test wallet."
        runtime = "workerd" if "Workerd" in type(live_server).__name__ else "uvicorn"
        shot = page.screenshot(ARTIFACTS / f"invite-terms-{runtime}.png")
        assert shot.startswith(b"\x89PNG") and len(shot) > 10_000

        page.tab_to("connect")
        page.press("Enter")
        page.wait_for("document.body.dataset.state === 'message'")
        shown = page.text("#message")
        assert wallet.account[2:].lower() in shown.lower() and "Chain: eip155:31337" in shown
        assert page.focused() == "sign"  # the next step has the focus
        page.press("Enter")
        page.wait_for("document.body.dataset.state === 'verified'")
        assert wallet.signed_messages() == [shown]  # what was signed is exactly what was shown
        assert page.focused() == "accept"
        page.press("Enter")
        page.wait_for("document.body.dataset.state === 'accepted'")

        assert "intent is locked" in page.text("#status")
        assert page.evaluate("document.querySelector('#status a').getAttribute('href')") == f"/proof/{challenge_id}"
        assert deal.status(challenge_id) == "INTENT_LOCKED"
        assert [method for method, _ in wallet.calls] == ["eth_requestAccounts", "eth_chainId", "personal_sign"]
        assert page.csp_violations() == [] and not [line for line in page.log if line.startswith("exception")]
        page.screenshot(ARTIFACTS / "invite-accepted.png")
        # The proof link works: public now that intent is locked.
        proof = httpx.get(f"{live_server.url}/proof/{challenge_id}", timeout=30)
        assert proof.status_code == 200 and "INTENT_LOCKED" in proof.text
    finally:
        page.close()
        deal.close()


def test_invite_page_and_a_wrong_link_in_each_runtime(browser: Browser, live_server: Any, chain: AnvilNode) -> None:
    deal = Deal(live_server.url, chain)
    challenge_id = deal.send(chain.accounts[3])
    url = deal.invite_url(challenge_id)
    page = browser.new_page()
    try:
        page.navigate(url)
        page.wait_for("document.body.dataset.state === 'idle'")
        assert page.text("#no-wallet").startswith("No browser wallet found")  # no wallet installed in this tab
        assert page.csp_violations() == []
        wrong = url[:-1] + ("A" if not url.endswith("A") else "B")
        answer = httpx.get(wrong, timeout=30)
        assert answer.status_code == 404 and "This invitation link does not work" in answer.text
        page.navigate(wrong)
        assert page.text("h1") == "This invitation link does not work"
        assert "Sell 3 GPUs" not in page.evaluate("document.documentElement.outerHTML")
    finally:
        page.close()
        deal.close()


# ---- refusals in plain words


def test_rejecting_the_signature_changes_nothing_and_can_be_retried(page: Page, deal: Deal, chain: AnvilNode) -> None:
    wallet = counterparty_wallet(chain, reject={"personal_sign"})
    challenge_id = deal.send(wallet.account)
    open_invite(page, wallet, deal.invite_url(challenge_id))
    page.evaluate("document.getElementById('connect').click()")
    page.wait_for("document.body.dataset.state === 'message'")
    page.evaluate("document.getElementById('sign').click()")
    page.wait_for("document.body.dataset.state === 'rejected'")

    assert page.text("#status") == (
        "You rejected the request in your wallet. Nothing was signed and nothing changed; you can try again."
    )
    assert page.evaluate("document.getElementById('status').getAttribute('role')") == "alert"
    assert page.evaluate("document.getElementById('decision').hidden") is True
    assert deal.status(challenge_id) == "AWAITING_COUNTERPARTY"
    page.screenshot(ARTIFACTS / "invite-rejected.png")

    wallet.reject.clear()  # the person changes their mind: the same message, signed this time
    page.evaluate("document.getElementById('sign').click()")
    page.wait_for("document.body.dataset.state === 'verified'")
    page.evaluate("document.getElementById('decline').click()")
    page.wait_for("document.body.dataset.state === 'declined'")
    assert "You declined the invitation" in page.text("#status")
    assert deal.status(challenge_id) == "CANCELLED"


def test_rejecting_the_connection_is_said_plainly(page: Page, deal: Deal, chain: AnvilNode) -> None:
    wallet = counterparty_wallet(chain, reject={"eth_requestAccounts"})
    challenge_id = deal.send(wallet.account)
    open_invite(page, wallet, deal.invite_url(challenge_id))
    page.evaluate("document.getElementById('connect').click()")
    page.wait_for("document.body.dataset.state === 'rejected'")
    assert "You rejected the request in your wallet" in page.text("#status")
    assert deal.status(challenge_id) == "AWAITING_COUNTERPARTY"


def test_wrong_account_is_caught_before_anything_is_signed(page: Page, deal: Deal, chain: AnvilNode) -> None:
    invited = chain.accounts[4]
    wallet = counterparty_wallet(chain, index=5)  # the browser wallet holds another account
    challenge_id = deal.send(invited)
    open_invite(page, wallet, deal.invite_url(challenge_id))
    page.evaluate("document.getElementById('connect').click()")
    page.wait_for("document.body.dataset.state === 'wrong-account'")

    assert page.text("#status") == (
        f"Wrong account: your wallet is using {wallet.account.lower()}, but this needs {invited.lower()}. Switch to that"
        " account in your wallet, then connect again."
    )
    assert wallet.signed_messages() == [] and page.evaluate("document.getElementById('signing').hidden") is True
    assert deal.status(challenge_id) == "AWAITING_COUNTERPARTY"
    page.screenshot(ARTIFACTS / "invite-wrong-account.png")


def test_a_wallet_that_is_not_the_invited_account_cannot_accept(page: Page, deal: Deal, chain: AnvilNode) -> None:
    """Invited by user id: the wallet (a stranger's, though it is the required one) signs, the server refuses."""
    issued = deal.http.post("/admin/api-keys", json={}, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    wallet = counterparty_wallet(chain, index=6)
    challenge_id = deal.send(wallet.account, counterparty_user_id=issued["user_id"])
    open_invite(page, wallet, deal.invite_url(challenge_id))
    connect_and_sign(page)
    page.evaluate("document.getElementById('accept').click()")
    page.wait_for("document.body.dataset.state === 'wrong-account'")
    assert page.text("#status") == (
        "Wrong account: this wallet does not belong to the invited counterparty of this challenge. Use the wallet the"
        " invitation is for."
    )
    assert deal.status(challenge_id) == "AWAITING_COUNTERPARTY"


def test_wrong_network_is_said_plainly(page: Page, deal: Deal, chain: AnvilNode) -> None:
    wallet = counterparty_wallet(chain, index=7, chain_id="0x1")
    challenge_id = deal.send(wallet.account)
    open_invite(page, wallet, deal.invite_url(challenge_id))
    page.evaluate("document.getElementById('connect').click()")
    page.wait_for("document.body.dataset.state === 'wrong-chain'")
    assert page.text("#status") == (
        "Wrong network: your wallet is on chain 1, but this needs chain 31337 (local). Switch network in your wallet,"
        " then connect again."
    )
    assert deal.status(challenge_id) == "AWAITING_COUNTERPARTY"


def test_an_expired_signing_request_is_said_plainly(
    page: Page, deal: Deal, chain: AnvilNode, server: LiveServer
) -> None:
    wallet = counterparty_wallet(chain, index=8)
    challenge_id = deal.send(wallet.account)
    open_invite(page, wallet, deal.invite_url(challenge_id))
    page.evaluate("document.getElementById('connect').click()")
    page.wait_for("document.body.dataset.state === 'message'")
    # The request the page got expires before it is signed (as after 10 idle minutes).
    signing_id = page.evaluate(
        "(() => { const m = document.getElementById('message').textContent.match(/Challenge ID: (\\S+)/);"
        " return m && m[1]; })()"
    )
    with sqlite3.connect(server.database_path) as connection:
        connection.execute(
            "UPDATE wallet_challenges SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?", (signing_id,)
        )
    page.evaluate("document.getElementById('sign').click()")
    page.wait_for("document.body.dataset.state === 'expired'")
    assert page.text("#status") == "This signing request has expired. Connect again to get a new one."
    assert deal.status(challenge_id) == "AWAITING_COUNTERPARTY"


# ---- mobile and the connect page


def test_invite_page_reads_at_375_px(page: Page, deal: Deal, chain: AnvilNode) -> None:
    wallet = counterparty_wallet(chain, index=9)
    challenge_id = deal.send(wallet.account, title="A long title that has to wrap on a phone screen without overflow")
    page.viewport(375, 812, mobile=True)
    open_invite(page, wallet, deal.invite_url(challenge_id))
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the screen
    font = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert font >= 16
    heights = page.evaluate("[...document.querySelectorAll('button')].map((b) => b.getBoundingClientRect().height)")
    assert heights and min(height for height in heights if height) >= 44  # touch-sized controls
    connect_and_sign(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shot = page.screenshot(ARTIFACTS / "invite-375px.png")
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000


def test_connect_page_signs_a_given_request_with_window_ethereum(
    page: Page, server: LiveServer, chain: AnvilNode
) -> None:
    wallet = counterparty_wallet(chain, index=2)
    created = httpx.post(
        f"{server.url}/gatekeeper/v2/wallet/challenge",
        json={"wallet_address": wallet.account, "chain_id": LOCAL_CHAIN},
        timeout=30,
    ).json()
    install_wallet(page, wallet, eip6963=False)  # an older wallet: window.ethereum only
    page.navigate(f"{server.url}/connect?challenge_id={created['challenge_id']}")
    page.wait_for("document.body.dataset.state === 'idle'")
    assert page.text("#message") == created["message"]  # shown before anything is connected
    assert page.text("#no-wallet") == "Wallet found: Browser wallet."
    connect_and_sign(page)
    assert wallet.signed_messages() == [created["message"]]
    assert page.text("#status").startswith(f"Wallet verified: you control {wallet.account.lower()}")
    assert page.csp_violations() == []
    page.screenshot(ARTIFACTS / "connect-verified.png")
    again = httpx.get(f"{server.url}/connect?challenge_id={created['challenge_id']}", timeout=30)
    assert again.status_code == 409  # single use


def test_connect_page_makes_a_request_for_the_connected_wallet(
    page: Page, server: LiveServer, chain: AnvilNode
) -> None:
    wallet = counterparty_wallet(chain, index=2)
    install_wallet(page, wallet)
    page.navigate(f"{server.url}/connect")
    page.wait_for("document.body.dataset.state === 'idle'")
    assert page.evaluate("document.getElementById('signing').hidden") is True
    connect_and_sign(page)
    (signed,) = wallet.signed_messages()
    assert "Chain: eip155:31337" in signed and page.text("#message") == signed
    assert "Wallet verified" in page.text("#status")
