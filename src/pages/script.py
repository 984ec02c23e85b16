"""The pages' one script (allowed by its hash): find a wallet (EIP-6963, else window.ethereum), show the exact
message, personal_sign it, verify it, and on an invitation accept or decline; every outcome in plain words."""

from __future__ import annotations

# Inline, so the Worker bundle (src/**/*.py) carries it; the CSP allows exactly this text by its sha256.
# It reads its configuration from the page's <script type="application/json" id="page-config"> block and
# never stores anything: the wallet session lives in this page's memory only.
WALLET_SCRIPT = r"""
(() => {
  "use strict";
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const el = (id) => document.getElementById(id);
  const ui = {
    picker: el("picker"), select: el("wallet-picker"), none: el("no-wallet"), connect: el("connect"),
    account: el("account"), signing: el("signing"), message: el("message"), sign: el("sign"),
    decision: el("decision"), accept: el("accept"), decline: el("decline"), status: el("status"),
  };
  const announced = [];
  const state = { provider: null, account: null, challenge: config.wallet_challenge, session: null, watched: [] };
  const networkName = (id) => (config.chain_id === id && config.network ? id + " (" + config.network + ")" : String(id));

  function setState(name) { document.body.dataset.state = name; }

  function show(kind, text, link) {
    ui.status.className = kind;
    ui.status.setAttribute("role", kind === "error" ? "alert" : "status");
    ui.status.textContent = text;
    if (link) {
      const anchor = document.createElement("a");
      anchor.href = link.href;
      anchor.textContent = link.text;
      ui.status.append(" ", anchor);
    }
  }

  function wallets() {
    const found = announced.map((detail) => ({ label: String(detail.info.name || "Wallet"), provider: detail.provider }));
    if (!found.length && window.ethereum && typeof window.ethereum.request === "function") {
      found.push({ label: "Browser wallet", provider: window.ethereum });
    }
    return found;
  }

  function renderPicker() {
    const found = wallets();
    const chosen = ui.select.value;
    ui.select.replaceChildren(...found.map((wallet, index) => {
      const option = document.createElement("option");
      option.value = String(index);
      option.textContent = wallet.label;
      return option;
    }));
    if (chosen && Number(chosen) < found.length) ui.select.value = chosen;
    ui.picker.hidden = found.length < 2;
    ui.none.textContent = found.length === 0
      ? "No browser wallet found. Install or unlock one (any EIP-1193 wallet), then reload this page."
      : found.length === 1 ? "Wallet found: " + found[0].label + "." : found.length + " wallets found: choose one.";
  }

  window.addEventListener("eip6963:announceProvider", (event) => {
    const detail = event.detail;
    if (!detail || !detail.info || !detail.provider || typeof detail.provider.request !== "function") return;
    if (announced.some((known) => known.info.uuid === detail.info.uuid)) return;
    announced.push(detail);
    renderPicker();
  });
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  window.addEventListener("load", renderPicker);
  renderPicker();

  function utf8Hex(text) {
    let hex = "0x";
    for (const byte of new TextEncoder().encode(text)) hex += byte.toString(16).padStart(2, "0");
    return hex;
  }

  async function api(method, path, body, token) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch(path, { method, headers, body: JSON.stringify(body || {}), credentials: "omit", cache: "no-store" });
    } catch (error) {
      throw { kind: "network" };
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      const problem = (data && data.error) || {};
      throw { kind: "api", status: response.status, code: problem.code, message: problem.message, details: problem.details || {} };
    }
    return data;
  }

  const REJECTED = "You rejected the request in your wallet. Nothing was signed and nothing changed; you can try again.";

  function wrongAccount(connected) {
    return "Wrong account: your wallet is using " + connected + ", but this needs " + config.wallet +
      ". Switch to that account in your wallet, then connect again.";
  }

  function explain(error) {
    if (error && error.kind === "api") {
      const status = (error.details && error.details.status) || "changed";
      switch (error.code) {
        case "E1002": return ["wrong-chain", "Wrong network: this service does not support your wallet's network. Switch network in your wallet, then connect again."];
        case "E1003": return ["error", "This signing request no longer exists. Reload the page to start again."];
        case "E1004": return ["expired", "This signing request has expired. Connect again to get a new one."];
        case "E1005": case "E1008": return ["error", "The signature could not be checked. Try again, or use another wallet."];
        case "E1006": return ["wrong-account", "Wrong account: the message was signed by another account than the one connected. Switch to the right account and connect again."];
        case "E1007": return ["error", "This signing request was already used. Reload the page to start again."];
        case "E3010": case "E3012": return ["wrong-account", "Wrong account: this wallet does not belong to the invited counterparty of this challenge. Use the wallet the invitation is for."];
        case "E3013": return ["expired", "This challenge has expired: the time to answer it has passed. Nothing was accepted."];
        case "E3011": case "E3014": case "E3015": return ["error", "This challenge can no longer be answered: it is " + status + " now. Reload the page to see where it stands."];
        case "E9003": return ["error", "Too many attempts in a short time. Wait a minute, then try again."];
        case "E9005": case "E9006": return ["expired", "Your wallet session has expired. Sign the message again."];
        case "E9010": return ["error", "This service has turned the feature off for now. Try again later."];
        default: return ["error", "The service refused the request: " + (error.message || "unknown error") + "."];
      }
    }
    if (error && error.kind === "network") return ["error", "The service could not be reached. Check your connection and try again."];
    if (error && error.kind === "plain") return [error.state, error.text];
    const code = Number(error && error.code);
    if (code === 4001) return ["rejected", REJECTED];
    if (code === 4100) return ["rejected", "Your wallet has not allowed this page to use the account. Connect again and approve it."];
    if (code === 4900 || code === 4901) return ["wrong-chain", "Your wallet is not connected to a network. Connect it, then try again."];
    if (code === -32002) return ["error", "Your wallet already has a request waiting: open the wallet and answer it there."];
    return ["error", "Your wallet reported a problem: " + String((error && error.message) || "unknown error") + "."];
  }

  function busy(on) {
    for (const button of [ui.connect, ui.sign, ui.accept, ui.decline]) {
      if (button) button.setAttribute("aria-busy", on ? "true" : "false");
    }
  }

  function guarded(step) {
    let running = false;
    return async () => {
      if (running) return;
      running = true;
      busy(true);
      try {
        await step();
      } catch (error) {
        const [name, text] = explain(error);
        setState(name);
        show("error", text);
      } finally {
        running = false;
        busy(false);
      }
    };
  }

  function forget(reason) {
    state.session = null;
    if (ui.decision) ui.decision.hidden = true;
    if (config.page === "invite" || !config.wallet_challenge) ui.signing.hidden = true;
    ui.sign.disabled = true;
    setState("idle");
    show("error", reason);
  }

  function watch(provider) {
    if (state.watched.includes(provider) || typeof provider.on !== "function") return;
    state.watched.push(provider);
    provider.on("accountsChanged", (accounts) => {
      const next = String((accounts || [])[0] || "").toLowerCase();
      if (state.provider === provider && state.account && next !== state.account) {
        forget("Your wallet switched accounts. Connect again to continue.");
      }
    });
    provider.on("chainChanged", () => {
      if (state.provider === provider && state.account && config.chain_id) {
        forget("Your wallet switched networks. Connect again to continue.");
      }
    });
  }

  async function connect() {
    const found = wallets();
    const wallet = found[Number(ui.select.value) || 0];
    if (!wallet) {
      throw { kind: "plain", state: "no-wallet", text: "No browser wallet found. Install or unlock one (any EIP-1193 wallet), then reload this page." };
    }
    state.provider = wallet.provider;
    state.account = null;
    state.session = null;
    if (ui.decision) ui.decision.hidden = true;
    watch(wallet.provider);
    setState("connecting");
    show("info", "Waiting for your wallet: approve the connection there.");
    const accounts = await wallet.provider.request({ method: "eth_requestAccounts" });
    const account = String((accounts || [])[0] || "").toLowerCase();
    if (!/^0x[0-9a-f]{40}$/.test(account)) {
      throw { kind: "plain", state: "error", text: "Your wallet did not share an account with this page." };
    }
    state.account = account;
    ui.account.textContent = "Connected account: " + account;
    if (config.wallet && account !== config.wallet) {
      throw { kind: "plain", state: "wrong-account", text: wrongAccount(account) };
    }
    const chain = parseInt(String(await wallet.provider.request({ method: "eth_chainId" })), 16);
    if (config.chain_id && chain !== config.chain_id) {
      throw {
        kind: "plain", state: "wrong-chain",
        text: "Wrong network: your wallet is on chain " + chain + ", but this needs chain " + networkName(config.chain_id) +
          ". Switch network in your wallet, then connect again.",
      };
    }
    if (!state.challenge || state.challenge.used) {
      const created = await api("POST", "/gatekeeper/v2/wallet/challenge", { wallet_address: account, chain_id: "eip155:" + chain });
      state.challenge = { challenge_id: created.challenge_id, message: created.message, used: false };
    }
    ui.message.textContent = state.challenge.message;
    ui.signing.hidden = false;
    ui.sign.disabled = false;
    setState("message");
    show("info", "Connected. Read the message, then sign it with your wallet.");
    ui.sign.focus();
  }

  async function sign() {
    if (!state.provider || !state.account || !state.challenge) {
      throw { kind: "plain", state: "idle", text: "Connect your wallet first." };
    }
    setState("signing");
    show("info", "Waiting for your wallet: check the message there and sign it.");
    const signature = await state.provider.request({ method: "personal_sign", params: [utf8Hex(state.challenge.message), state.account] });
    show("info", "Checking the signature…");
    const verified = await api("POST", "/gatekeeper/v2/wallet/verify", { challenge_id: state.challenge.challenge_id, signature: String(signature) });
    state.challenge.used = true;
    state.session = verified.session_token;
    ui.sign.disabled = true;
    setState("verified");
    if (config.page === "invite" && config.can_act) {
      ui.decision.hidden = false;
      show("ok", "Wallet verified: " + verified.wallet_address + ". Now accept or decline the challenge.");
      ui.accept.focus();
    } else {
      show("ok", "Wallet verified: you control " + verified.wallet_address + " (checked " + verified.verified_at + "). You can close this page.");
    }
  }

  function outcome(after) {
    const proof = after.intent_locked_at ? { href: config.proof_path, text: "View the proof" } : null;
    switch (after.status) {
      case "INTENT_LOCKED": case "ACTIVE": case "AWAITING_RESOLUTION":
        return ["ok", "Accepted. Every check passed and intent is locked: the challenge is " + after.status + ".", proof];
      case "AWAITING_GATEKEEPER":
        return ["ok", "Accepted. The checks run once the other side has verified its wallet; you will be told how it ends.", null];
      case "AWAITING_COUNTERPARTY":
        return ["ok", "Accepted. The challenge starts once every required stake is held.", null];
      case "CANCELLED":
        return ["error", "Accepted, but a required funds check did not pass, so the challenge was cancelled. No balance was shown to anyone.", null];
      default:
        return ["ok", "Accepted. The challenge is " + after.status + " now.", proof];
    }
  }

  async function decide(action) {
    if (!state.session) throw { kind: "plain", state: "idle", text: "Verify your wallet first." };
    setState(action === "accept" ? "accepting" : "declining");
    show("info", action === "accept" ? "Accepting…" : "Declining…");
    const after = await api("POST", "/challenges/" + encodeURIComponent(config.challenge_id) + "/" + action, {}, state.session);
    ui.accept.disabled = true;
    ui.decline.disabled = true;
    document.body.dataset.challengeStatus = after.status;
    if (action === "decline") {
      setState("declined");
      show("ok", "You declined the invitation. The challenge is cancelled and its creator will be told.");
      return;
    }
    const [kind, text, link] = outcome(after);
    setState(kind === "ok" ? "accepted" : "cancelled");
    show(kind, text, link);
  }

  ui.connect.addEventListener("click", guarded(connect));
  ui.sign.addEventListener("click", guarded(sign));
  if (ui.accept) ui.accept.addEventListener("click", guarded(() => decide("accept")));
  if (ui.decline) ui.decline.addEventListener("click", guarded(() => decide("decline")));
  ui.sign.disabled = true;
  setState("idle");
})();
"""
