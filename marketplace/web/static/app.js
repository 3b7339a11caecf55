// Marketplace web UI: the browser wallet (EIP-1193 via ethers v6), transaction following, charts.
// The server never signs anything: it prepares unsigned transactions; the user's wallet signs them.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const short = (a) => `${a.slice(0, 6)}…${a.slice(-4)}`;
  const CHAIN_ID = BigInt(document.body.dataset.chainId);
  const EXPLORER = document.body.dataset.explorer || "";

  // ---------------------------------------------------------------- amounts and percentages
  // The rules of marketplace/web/filters.py, for what the page computes itself (a browser test checks both agree).
  const ETH_PLACES = 4; // an amount in ETH is rounded to 4 decimals...
  const SMALL_DIGITS = 2; // ...unless that keeps fewer than 2 significant digits (then finer, down to 1 wei)
  const group = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  /** wei in ETH, exactly, without trailing zeros (filters.eth). */
  function ethExact(wei) {
    const value = BigInt(wei);
    const abs = value < 0n ? -value : value;
    const frac = (abs % 10n ** 18n).toString().padStart(18, "0").replace(/0+$/, "");
    const text = `${abs / 10n ** 18n}${frac ? "." + frac : ""}`;
    return value < 0n ? `-${text}` : text;
  }
  /** wei in ETH rounded half up to 4 decimals (finer for small amounts: 2 significant digits), trailing zeros
   * dropped, thousands grouped (filters.round_eth): "1.3342", "0.2", "12,345.5", "0.00012", "0". */
  function roundEth(wei) {
    const value = BigInt(wei);
    const abs = value < 0n ? -value : value;
    if (abs === 0n) return "0";
    const adjusted = abs.toString().length - 1 - 18; // power of ten of the leading digit, in ETH
    const exponent = Math.min(-ETH_PLACES, Math.max(adjusted - SMALL_DIGITS + 1, -18));
    const quantum = 10n ** BigInt(18 + exponent); // in wei
    const rounded = ((abs + quantum / 2n) / quantum) * quantum;
    const whole = group((rounded / 10n ** 18n).toString());
    const frac = (rounded % 10n ** 18n).toString().padStart(18, "0").slice(0, -exponent).replace(/0+$/, "");
    const text = frac ? `${whole}.${frac}` : whole;
    return value < 0n ? `-${text}` : text;
  }
  /** An amount as the server renders it (filters.amount): rounded with its unit, the exact value on hover. */
  function amountHtml(wei, unit = "ETH") {
    const full = ethExact(wei);
    const title = BigInt(wei) === 0n ? `0 ${unit}` : `${full} ${unit} = ${group(BigInt(wei).toString())} wei`;
    return `<span class="amount" title="${escapeHtml(title)}" data-wei="${BigInt(wei)}" data-copy="${escapeHtml(full)}">` +
      `${escapeHtml(roundEth(wei))}\u00a0${escapeHtml(unit)}</span>`;
  }
  /** A rate set in basis points, exactly (filters.bps): "2%", "66.66%". */
  const bps = (value) => (value % 100 ? `${(value / 100).toFixed(2)}%` : `${value / 100}%`);
  /** A measured value held in basis points (a reliability), one decimal, half up (filters.pct_bps): "66.7%". */
  function pct(value) {
    const v = Math.trunc(Number(value));
    const tenths = Math.floor((Math.abs(v) + 5) / 10);
    return `${v < 0 ? "-" : ""}${Math.floor(tenths / 10)}.${tenths % 10}%`;
  }
  window.marketplaceFormat = { ethExact, roundEth, amountHtml, bps, pct };
  const VERIFIER_ABI = ["function verifyRound(bytes32 roundTag, bytes32[] commitments, uint256[] scores, bool[] flags, bytes32 refCommitment, bytes proof) view returns (bool)"];

  function describe(err) {
    if (err && (err.code === 4001 || err.code === "ACTION_REJECTED" || err?.info?.error?.code === 4001)) {
      return "You rejected the request in your wallet.";
    }
    return err?.info?.error?.message || err?.shortMessage || err?.message || String(err);
  }

  function showError(message) {
    const box = $("#wallet-error");
    box.textContent = message;
    box.hidden = !message;
  }

  const wallet = {
    account: null,
    disconnected: false, // the user pressed "Disconnect": the page forgets the account until they connect again
    available() {
      return typeof window.ethereum !== "undefined" && window.ethereum !== null;
    },
    require() {
      if (!this.available()) {
        throw new Error("No browser wallet found. Install an EIP-1193 wallet (such as MetaMask) to sign transactions.");
      }
    },
    async connect() {
      this.require();
      const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
      if (!accounts || !accounts.length) throw new Error("Your wallet shared no account.");
      this.disconnected = false;
      sessionStorage.removeItem("wallet-disconnected");
      await this.ensureChain();
      this.set(accounts[0]);
      return this.account;
    },
    disconnect() {
      this.disconnected = true;
      sessionStorage.setItem("wallet-disconnected", "1");
      this.set(null);
    },
    async restore() {
      if (!this.available() || sessionStorage.getItem("wallet-disconnected")) return;
      try {
        const accounts = await window.ethereum.request({ method: "eth_accounts" });
        if (accounts && accounts.length) this.set(accounts[0]);
      } catch (_) { /* not connected yet */ }
    },
    set(address) {
      this.account = address ? ethers.getAddress(address) : null;
      const button = $("#wallet-button");
      const link = $("#wallet-address");
      button.hidden = !!this.account;
      link.hidden = !this.account;
      $("#wallet-disconnect").hidden = !this.account;
      $("#wallet-balance").hidden = !this.account;
      const mine = $("#my-account"); // "My account" in the navigation: the connected wallet's account page
      if (mine) {
        mine.hidden = !this.account;
        mine.href = this.account ? `/accounts/${this.account}` : "/accounts";
        if (this.account && location.pathname === mine.getAttribute("href")) mine.setAttribute("aria-current", "page");
        else mine.removeAttribute("aria-current");
      }
      if (this.account) {
        link.textContent = short(this.account);
        link.href = `/accounts/${this.account}`; // "my account": roles, earnings, what can be withdrawn
        link.title = this.account;
        this.showBalance();
        this.checkChain();
      } else {
        $("#wallet-switch").hidden = true;
      }
      document.dispatchEvent(new CustomEvent("wallet:changed", { detail: this.account }));
    },
    /** Shows the connected account's balance on this page's chain (read through the wallet). */
    async showBalance() {
      const box = $("#wallet-balance");
      const account = this.account;
      try {
        const wei = await window.ethereum.request({ method: "eth_getBalance", params: [account, "latest"] });
        if (account !== this.account) return;
        box.innerHTML = `balance ${amountHtml(BigInt(wei))}`;
        box.id = "wallet-balance";
      } catch (_) {
        box.textContent = "";
      }
    },
    /** Offers "Switch network" while the wallet is on another chain than this page's. Checks overlap when the
     * wallet changes account and chain in quick succession: only the latest one's answer is shown (an earlier one
     * answering last would hide the button while the wallet is on another chain). */
    async checkChain() {
      const check = (this.chainChecks = (this.chainChecks || 0) + 1);
      try {
        const have = BigInt(await window.ethereum.request({ method: "eth_chainId" }));
        const other = have !== CHAIN_ID;
        if (check !== this.chainChecks) return !other; // a later check shows its own answer
        $("#wallet-switch").hidden = !other;
        if (other) showError(`Your wallet is on chain ${have}; this market is on chain ${CHAIN_ID} (${document.body.dataset.network}). Use "Switch network".`);
        return !other;
      } catch (_) {
        return false;
      }
    },
    /** Asks the wallet to switch to this page's chain, adding it first when the wallet does not know it (4902). */
    async ensureChain() {
      const have = BigInt(await window.ethereum.request({ method: "eth_chainId" }));
      if (have === CHAIN_ID) return;
      const chainId = "0x" + CHAIN_ID.toString(16);
      try {
        await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
      } catch (err) {
        const unknown = err && (err.code === 4902 || err?.data?.originalError?.code === 4902);
        const rpc = document.body.dataset.rpcUrl;
        if (!unknown) throw new Error(`Your wallet is on chain ${have}; switch it to chain ${CHAIN_ID} (${document.body.dataset.network}): ${describe(err)}`);
        if (!rpc) throw new Error(`Your wallet does not know chain ${CHAIN_ID} (${document.body.dataset.network}); add it with an RPC URL of yours, then try again.`);
        const params = { chainId, chainName: `${document.body.dataset.network} (chain ${CHAIN_ID})`, rpcUrls: [rpc],
          nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } };
        if (EXPLORER) params.blockExplorerUrls = [EXPLORER];
        await window.ethereum.request({ method: "wallet_addEthereumChain", params: [params] });
        await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
      }
      $("#wallet-switch").hidden = true;
    },
    /** Asks the wallet to sign and send {to, data, value}; returns the transaction hash. */
    async send(tx) {
      const from = this.account || (await this.connect());
      await this.ensureChain();
      const provider = new ethers.BrowserProvider(window.ethereum);
      const signer = await provider.getSigner(from);
      return await signer.sendUncheckedTransaction({ to: tx.to, data: tx.data, value: BigInt(tx.value) });
    },
  };
  window.marketplaceWallet = wallet;

  /** A transaction's hash, linked to the network's explorer when it has one (the local chain has none). */
  function txLink(hash) {
    const code = `<code class="tx-hash" title="${escapeHtml(hash)}" data-copy="${escapeHtml(hash)}">${escapeHtml(short(hash))}</code>`;
    return EXPLORER ? `<a class="tx-link" href="${escapeHtml(EXPLORER)}/tx/${escapeHtml(hash)}" target="_blank" rel="noopener">${code}</a>` : code;
  }

  /** Puts a transaction's state into its status box: confirm (the wallet is open), pending, confirmed, failed,
   * replaced; `data-state` says which (tests and styles read it). `cls` overrides the state's colour (a replacement
   * that did what was asked is good news). */
  function txState(el, state, html, cls = null) {
    el.dataset.state = state;
    cls = cls || { confirm: "pending", pending: "pending", confirmed: "ok", failed: "bad", replaced: "bad" }[state];
    el.innerHTML = `<span class="${cls}" id="tx-${state}">${html}</span>`;
  }

  /** Raised when the transaction was replaced (sped up or cancelled in the wallet) before it was mined;
   * `replacement` is the mined transaction that took its nonce ({hash, to, input, value}), null if not found. */
  class Replaced extends Error {
    constructor(message, replacement) {
      super(message);
      this.replacement = replacement;
    }
  }

  /** The server's status of a mined transaction (it may lag the chain for a moment: asked again while 404). */
  async function minedStatus(hash) {
    for (let i = 0; i < 40; i++) {
      const response = await fetch(`/api/tx/${hash}`);
      const body = await response.json();
      if (response.ok && body.status !== "pending") return body;
      if (!response.ok && response.status !== 404) throw new Error(body.detail || `HTTP ${response.status}`);
      await sleep(300);
    }
    throw new Error(`The transaction ${short(hash)} is not known to the server yet; reload the page.`);
  }

  /** Polls the server until the transaction is mined; resolves with its status, rejects if it failed (the reason
   * in words) or was replaced by another with the same nonce (`Replaced`, with the replacement when found). */
  async function follow(hash, el, sent = null) {
    txState(el, "pending", `Pending: transaction ${txLink(hash)} sent, waiting for it to be mined…`);
    for (let i = 0; i < 1200; i++) {
      const response = await fetch(`/api/tx/${hash}`);
      const body = await response.json();
      if (response.ok && body.status === "confirmed") return body;
      if (response.ok && body.status === "failed") {
        const error = new Error(`The transaction ${short(hash)} failed in block ${body.block_number}: ${body.error || "it was reverted"}.`);
        error.failed = true;
        throw error;
      }
      if (!response.ok && response.status !== 404) throw new Error(body.detail || `HTTP ${response.status}`);
      if (response.status === 404 && sent && i % 4 === 3 && (await replaced(sent))) {
        throw new Replaced(`The transaction ${short(hash)} was replaced by another one from your wallet with the same nonce ` +
          "(sped up or cancelled there).", await findReplacement(sent));
      }
      await sleep(i < 20 ? 300 : 1500);
    }
    throw new Error("Still not mined; check your wallet.");
  }

  /** Whether the transaction `sent` ({from, nonce}) can no longer be mined: the node does not know it and the
   * account's mined nonce has passed it. */
  async function replaced(sent) {
    try {
      const count = BigInt(await window.ethereum.request({ method: "eth_getTransactionCount", params: [sent.from, "latest"] }));
      return sent.nonce !== null && count > sent.nonce;
    } catch (_) {
      return false;
    }
  }

  /** How many blocks back from the latest the replacement of a transaction is looked for. */
  const REPLACEMENT_BLOCKS = 64n;

  /** The mined transaction from `sent.from` with `sent.nonce` (what replaced the one sent), looked for in the blocks
   * since it was sent (at most the last REPLACEMENT_BLOCKS); null if none is found or the wallet cannot tell. */
  async function findReplacement(sent) {
    try {
      const latest = BigInt(await window.ethereum.request({ method: "eth_blockNumber" }));
      const floor = latest > REPLACEMENT_BLOCKS ? latest - REPLACEMENT_BLOCKS : 0n;
      for (let n = sent.block > floor ? sent.block : floor; n <= latest; n++) {
        const block = await window.ethereum.request({ method: "eth_getBlockByNumber", params: ["0x" + n.toString(16), true] });
        for (const t of block?.transactions || []) {
          if (typeof t === "object" && t.from?.toLowerCase() === sent.from.toLowerCase() && BigInt(t.nonce) === sent.nonce) return t;
        }
      }
    } catch (_) { /* the wallet cannot tell */ }
    return null;
  }

  /** What a replacement did, shown in the status box: a speed-up (the same call, mined) resolves with the
   * replacement's status; a cancellation, another call or a failed replacement rejects (`err.cancelled` when the
   * call asked for was certainly not carried out, so the page may offer it again; not when that is unknown). */
  async function settleReplaced(err, tx, hash, el) {
    const by = err.replacement;
    err.cancelled = false;
    if (!by) {
      txState(el, "replaced", `✗ ${escapeHtml(err.message)} Its replacement was not found in the last blocks; ` +
        "reload the page to see what was mined.");
      throw err;
    }
    const same = (by.to || "").toLowerCase() === tx.to.toLowerCase() &&
      (by.input || by.data || "0x").toLowerCase() === tx.data.toLowerCase() && BigInt(by.value) === BigInt(tx.value);
    const was = `transaction ${txLink(hash)} was replaced in your wallet by ${txLink(by.hash)} (same nonce)`;
    let status = null;
    try {
      status = await minedStatus(by.hash);
    } catch (_) { /* said below */ }
    if (!status) {
      txState(el, "replaced", `✗ Replaced: ${was}; what it did is not known yet: reload the page.`);
      throw err;
    }
    if (same && status.status === "confirmed") {
      txState(el, "replaced", `✓ Sped up: ${was}, confirmed in block ${status.block_number}.`, "ok");
      return status;
    }
    err.cancelled = true;
    if (same) {
      txState(el, "replaced", `✗ Sped up, then failed: ${was}, which failed in block ${status.block_number}: ` +
        `${escapeHtml(status.error || "it was reverted")}.`);
    } else {
      txState(el, "replaced", `✗ Cancelled: ${was}, another transaction (mined in block ${status.block_number}); ` +
        "what you asked for was not done.");
    }
    throw err;
  }

  /** The whole life of one transaction: "confirm in your wallet" (the previous error cleared), then pending
   * with its hash, then confirmed (resolves with the server's status), failed or replaced (a speed-up resolves
   * with its replacement's status; else rejects; the box already says so). `onSent` runs once the wallet sent it
   * (e.g. to hide "Edit"). */
  async function sendTx(tx, el, onSent = () => {}) {
    showError("");
    txState(el, "confirm", "Confirm the transaction in your wallet…");
    let hash;
    try {
      hash = await wallet.send(tx);
    } catch (err) {
      txState(el, "failed", `✗ ${escapeHtml(describe(err))}`);
      throw err;
    }
    onSent(hash);
    let sent = null;
    try {
      const [seen, block] = await Promise.all([
        window.ethereum.request({ method: "eth_getTransactionByHash", params: [hash] }),
        window.ethereum.request({ method: "eth_blockNumber" }),
      ]);
      if (seen) sent = { from: seen.from, nonce: BigInt(seen.nonce), block: BigInt(block) };
    } catch (_) { /* the wallet cannot tell: replacement goes undetected */ }
    try {
      const result = await follow(hash, el, sent);
      txState(el, "confirmed", `✓ Confirmed in block ${result.block_number}: transaction ${txLink(hash)}.`);
      return result;
    } catch (err) {
      if (err instanceof Replaced) return await settleReplaced(err, tx, hash, el);
      txState(el, "failed", `✗ ${escapeHtml(describe(err))}`);
      throw err;
    }
  }

  async function postJson(url, data) {
    const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(data) });
    const body = await response.json();
    if (!response.ok) {
      const err = new Error(body.detail || `HTTP ${response.status}`);
      err.status = response.status;
      throw err;
    }
    return body;
  }

  /** Sends the transactions of a withdrawal in order, as the server lists them (`withdraw_steps`: a project's held
   * rejection bonds returned to its aggregator, the bond credits withdrawn, the project's payout), each asked for
   * unsigned (`POST /api/tx/{action}`) and followed through its lifecycle in `el` like any other; resolves with the
   * summaries of those confirmed and the last one's status. */
  async function sendSteps(steps, el, onSent = () => {}) {
    const summaries = [];
    let result = null;
    for (const step of steps) {
      const body = { sender: wallet.account };
      if (step.project_id !== null && step.project_id !== undefined) body.project_id = step.project_id;
      if (step.round !== null && step.round !== undefined) body.round = step.round;
      const tx = await postJson(`/api/tx/${step.action}`, body);
      result = await sendTx(tx, el, onSent);
      summaries.push(tx.summary);
    }
    return { summaries, result };
  }

  /** The withdrawal of everything `account` is owed in project `pid` (the server's `withdraw_steps`, read now). */
  async function withdrawPlan(pid, account) {
    const response = await fetch(`/api/projects/${pid}/actions?account=${account}`);
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    if (!body.withdraw_steps.length) throw new Error("There is nothing to withdraw now.");
    return body.withdraw_steps;
  }

  // ---------------------------------------------------------------- post a job
  /** Signs and sends the reviewed job. Once the wallet sent it, "Edit" and the button go (the job cannot be posted
   * twice); a rejection in the wallet leaves both. */
  async function sendJob(button) {
    const section = button.closest("[data-tx]");
    const status = $(button.dataset.target);
    const edit = $("#job-edit");
    button.disabled = true;
    try {
      const tx = JSON.parse(section.dataset.tx);
      const result = await sendTx(tx, status, () => {
        button.hidden = true;
        if (edit) edit.hidden = true;
      });
      const link = result.project_id ? ` <a id="job-created-link" href="/projects/${result.project_id}">Project ${result.project_id}</a> created.` : "";
      status.insertAdjacentHTML("beforeend", link);
    } catch (err) {
      if (err.cancelled) { // replaced by another transaction in the wallet: the job was not posted, offer it again
        button.hidden = false;
        if (edit) edit.hidden = false;
      }
      if (!button.hidden) button.disabled = false;
    }
  }

  /** "Edit" on the review step: back to the form with what was typed (the form is posted again, unvalidated). */
  async function editJob(link) {
    const values = JSON.parse(link.dataset.values || "{}");
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/projects/new?edit=1";
    for (const [name, value] of Object.entries(values)) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    document.body.append(form);
    form.submit();
  }

  // ---------------------------------------------------------------- what a job costs (live, on the form)
  /** The job form's "What you send": escrow + protocol fee (ProjectConfig.protocol_fee: the fee rounded up), and
   * the record a reliability bar will require of each trainer (TrainingMarket.requiredTrackRecord: the budget per
   * guaranteed trainer, budget / minimum trainers, over the fee rate). The review step shows the server's figures. */
  function updateJobCosts() {
    const box = $("#job-costs");
    const out = $("#job-costs-live");
    if (!box || !out || !window.ethers) return;
    const feeBps = BigInt(box.dataset.feeBps);
    try {
      const budget = ethers.parseEther($("#f-budget_eth").value.trim() || "0");
      const aggregatorFee = ethers.parseEther($("#f-aggregator_fee_eth").value.trim() || "0");
      if (budget <= 0n || aggregatorFee < 0n) throw new Error("no budget");
      const fee = (budget * feeBps + 9999n) / 10000n;
      const escrow = budget + aggregatorFee;
      let text = `${amountHtml(escrow + fee)}: ${amountHtml(escrow)} escrowed + ${amountHtml(fee)} protocol fee (burned)`;
      const bar = Number($("#f-min_reliability_pct").value || 0);
      const minTrainers = BigInt(Math.max(1, Math.trunc(Number($("#f-min_trainers").value) || 1)));
      if (bar > 0) {
        const required = (budget * 10000n) / (minTrainers * feeBps);
        text += `; your reliability bar will require ${amountHtml(required)} of record available to each trainer ` +
          "(the budget per guaranteed trainer, earned in independent projects; joining reserves it until withdrawal, a flagged round spends it)";
      }
      out.innerHTML = text;
    } catch (_) {
      out.textContent = "";
    }
  }

  // ---------------------------------------------------------------- initial weights for a job
  /** Asks the server to build the chosen model and pin its initial weights to IPFS; fills in the CID. */
  async function generateWeights(button) {
    const status = $("#generate-status");
    const model = $("#f-model_name").value;
    const seed = Number($("#weights-seed")?.value || 0);
    button.disabled = true;
    status.className = "";
    status.textContent = `building ${model} and pinning its weights to IPFS…`;
    try {
      const body = await postJson(`/api/models/${encodeURIComponent(model)}/init`, { seed });
      const input = $("#f-initial_model_cid");
      input.value = body.cid;
      input.dispatchEvent(new Event("change", { bubbles: true }));
      status.className = "ok";
      status.textContent = `✓ pinned ${body.model} initial weights (${body.params.toLocaleString("en")} parameters, seed ${body.seed})`;
      button.disabled = false;
    } catch (err) {
      status.className = "bad";
      status.textContent = `✗ ${describe(err)}`;
      if (err.status === 503) button.textContent = "Generate initial weights (unavailable)";
      else button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- project actions: withdraw, abandon, start, cancel
  /** Replaces the given elements of the page with their fresh server rendering (after the index saw a transaction);
   * one the fresh page no longer has is removed. */
  async function refreshSections(ids) {
    const response = await fetch(location.pathname, { headers: { accept: "text/html" } });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ids) {
      const now = document.getElementById(id);
      const fresh = doc.getElementById(id);
      if (now && fresh) now.replaceWith(fresh);
      else if (now) now.remove();
    }
  }

  function initProjectActions(pid) {
    const statusOf = (action) => $(action === "withdraw" ? "#withdraw-status" : "#action-result") || $("#action-result");
    async function load(account) {
      const amount = $("#withdraw-amount");
      if (!account) {
        $$("[data-tx-action]").forEach((b) => { b.disabled = true; if (b.dataset.txAction !== "withdraw") b.hidden = true; });
        return;
      }
      const response = await fetch(`/api/projects/${pid}/actions?account=${account}`);
      const body = await response.json();
      if (!response.ok) { showError(body.detail); return; }
      for (const state of body.actions) {
        const button = $(`[data-tx-action="${state.action}"]`);
        if (!button) continue;
        button.disabled = !state.allowed;
        button.title = state.reason || "";
        if (state.action !== "withdraw") button.hidden = !state.allowed;
        else if (amount) {
          // The payout, and the rejection bonds credited to the account (over every project) that Withdraw collects too.
          const parts = [];
          if (BigInt(body.withdrawable) > 0n) parts.push(`<strong id="withdrawable">${amountHtml(body.withdrawable)}</strong>`);
          const bonds = body.withdraw_steps.find((s) => s.action === "withdraw-bonds");
          if (bonds) parts.push(`<strong id="withdrawable-bonds">${amountHtml(bonds.amount)}</strong> of rejection bonds credited to you`);
          amount.innerHTML = state.allowed
            ? `You can withdraw ${parts.join(" and ")} as <code>${escapeHtml(short(account))}</code>.`
            : `<span class="empty">${escapeHtml(state.reason)}</span>`;
        }
      }
    }
    async function run(button) {
      const action = button.dataset.txAction;
      button.disabled = true;
      try {
        const sender = wallet.account || (await wallet.connect());
        showError("");
        let summary, result;
        if (action === "withdraw") { // the payout and the bonds, as `marketplace project withdraw` collects them
          const sent = await sendSteps(await withdrawPlan(pid, sender), statusOf(action));
          summary = sent.summaries.join("; ");
          result = sent.result;
        } else {
          const tx = await postJson(`/api/tx/${action}`, { project_id: pid, sender });
          result = await sendTx(tx, statusOf(action));
          summary = tx.summary;
        }
        // The server re-indexed when it saw the receipt: re-render status, owner actions, payouts and bonds.
        await refreshSections(["project-status", "rounds-done", "project-state", "payouts-section", "bonds-section"]);
        await load(wallet.account);
        statusOf(action).innerHTML = `<span class="ok" id="action-done" data-action="${escapeHtml(action)}">✓ ${escapeHtml(summary)}: confirmed in block ${result.block_number}.</span>`;
        wallet.showBalance();
      } catch (err) {
        const box = statusOf(action);
        if (!box.dataset.state || box.dataset.state === "confirmed") txState(box, "failed", `✗ ${escapeHtml(describe(err))}`);
        button.disabled = false;
      }
    }
    document.addEventListener("wallet:changed", (e) => load(e.detail));
    document.addEventListener("click", (e) => {
      const button = e.target.closest("[data-tx-action]");
      if (button && !button.disabled) run(button);
    });
    if (wallet.account) load(wallet.account);
  }

  // ---------------------------------------------------------------- an account's page: withdraw what it can now
  /** The account page offers "Withdraw" on each project with something to withdraw now, to this account's own wallet
   * only (anyone may look at any account; only its wallet can withdraw its funds). Each withdrawal goes through the
   * transaction lifecycle in `#account-withdraw-status`; once confirmed the summary and the table are re-rendered. */
  function initAccount(title) {
    const address = title.dataset.address;
    const status = () => $("#account-withdraw-status");
    const buttons = () => $$("[data-account-withdraw], [data-account-withdraw-bonds]");
    const sections = ["account-summary", "account-projects", "account-withdraw-note", "account-bond-rounds"];
    function show(account) {
      const mine = !!account && account.toLowerCase() === address.toLowerCase();
      buttons().forEach((b) => { b.hidden = !mine; });
      const note = $("#account-withdraw-note");
      if (!note) return;
      note.hidden = mine;
      note.textContent = account && !mine
        ? `Your wallet is connected as ${short(account)}: only this account's own wallet can withdraw its funds.`
        : "Connect this account's wallet to withdraw here.";
    }
    /** Sends `steps` (a project's withdrawal, or the bonds alone) from the status box `box`; `done` is the id of the
     * confirmation, which names the transactions sent and the last one's hash. */
    async function run(button, steps, box, done) {
      buttons().forEach((b) => { b.disabled = true; });
      try {
        showError("");
        const sent = await sendSteps(await steps(), box, () => { button.hidden = true; });
        // The server re-indexed when it saw the receipts: the totals, the tables and the bonds show the withdrawal.
        const summary = sent.summaries.join("; ");
        await refreshSections(sections);
        const fresh = document.getElementById(box.id) || box; // the bonds' box is re-rendered with the summary
        txState(fresh, box.dataset.state, `<span id="${done}" data-project-id="${escapeHtml(button.dataset.projectId || "")}">` +
          `✓ ${escapeHtml(summary)}: confirmed in block ${sent.result.block_number} (transaction ${txLink(sent.result.hash)}).</span>`, "ok");
        wallet.showBalance();
      } catch (err) {
        if (!box.dataset.state || box.dataset.state === "confirmed") txState(box, "failed", `✗ ${escapeHtml(describe(err))}`);
      } finally {
        buttons().forEach((b) => { b.disabled = false; });
        show(wallet.account);
      }
    }
    /** A project's Withdraw: its payout and the bonds, as the project page's Withdraw sends them. */
    function withdraw(button) {
      const pid = Number(button.dataset.projectId);
      return run(button, () => withdrawPlan(pid, wallet.account), status(), "account-withdraw-done");
    }
    /** "Withdraw bonds": the account's bonds alone (its held bonds returned where their windows are over, its credit). */
    function withdrawBonds(button) {
      const steps = async () => {
        const response = await fetch(`/api/accounts/${address}/bonds`);
        const body = await response.json();
        if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
        if (!body.withdraw_steps.length) throw new Error("No rejection bond is credited to this account now.");
        return body.withdraw_steps;
      };
      return run(button, steps, $("#account-bonds-status"), "account-bonds-done");
    }
    document.addEventListener("wallet:changed", (e) => show(e.detail));
    document.addEventListener("click", (e) => {
      const button = e.target.closest("[data-account-withdraw], [data-account-withdraw-bonds]");
      if (!button || button.disabled || button.hidden) return;
      if (button.matches("[data-account-withdraw-bonds]")) withdrawBonds(button);
      else withdraw(button);
    });
    show(wallet.account);
  }

  // ---------------------------------------------------------------- join as trainer
  function initJoin(section) {
    const pid = Number(section.dataset.projectId);
    const button = $("#join-button");
    const status = $("#join-status");
    let joined = false; // set once this page joined: it no longer offers to join
    async function refresh(account) {
      $("#join-account").textContent = account ? `connected as ${account}` : "";
      $("#join-connect").hidden = !!account;
      if (!account) return;
      const response = await fetch(`/api/trainers/${account}`);
      const trainer = await response.json();
      if (!response.ok) { $("#join-eligibility").textContent = trainer.detail; return; }
      $("#join-reliability").textContent = pct(trainer.reliability_bps);
      $("#join-reliability").title = `${trainer.reliability_bps / 100}% exactly`;
      const min = Number(section.dataset.minReliability);
      // A project with a reliability bar also requires an available record (wei): earned in independent
      // projects and not reserved by the bar of another project this trainer is in (availableOf).
      const record = trainer.track_record;
      const required = BigInt(section.dataset.requiredEarned || "0");
      const available = BigInt(record.available);
      for (const [id, wei] of [["#join-available", record.available], ["#join-earned", record.earned],
                               ["#join-reserved", record.reserved]]) {
        const box = $(id);
        if (box) box.innerHTML = amountHtml(wei);
      }
      let problem = null;
      if (joined || trainer.projects.some((p) => p.project_id === pid)) problem = "you already joined this project";
      else if (section.dataset.status !== "open") problem = `the project is ${section.dataset.status}; joining is closed`;
      else if ([section.dataset.owner, section.dataset.aggregator].includes(account)) problem = "the owner and the aggregator cannot train";
      else if (trainer.reliability_bps < min) problem = `your reliability ${escapeHtml(pct(trainer.reliability_bps))} is below the project's minimum of ${bps(min)}`;
      else if (min > 0 && available < required) {
        problem = `you have ${amountHtml(record.available)} of record available (${amountHtml(record.earned)} earned, ` +
          `${amountHtml(record.reserved)} reserved by other bars); this project requires ${amountHtml(required)}`;
      }
      $("#join-eligibility").innerHTML = problem ? `✗ ${problem}` : "✓ you can join";
      $("#join-eligibility").className = problem ? "bad" : "ok";
      button.disabled = !!problem;
    }
    $("#join-connect").addEventListener("click", async () => {
      try { await wallet.connect(); showError(""); } catch (err) { showError(describe(err)); }
    });
    document.addEventListener("wallet:changed", (e) => refresh(e.detail));
    if (wallet.account) refresh(wallet.account);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        showError("");
        const tx = await postJson("/api/tx/join", { project_id: pid, sender: wallet.account });
        const result = await sendTx(tx, status, () => { button.hidden = true; });
        joined = true;
        const started = result.events.includes("TrainingStarted") ? " The project is full: training has started." : "";
        status.insertAdjacentHTML("beforeend", ` <span class="ok" id="join-done">Joined project ${pid}.</span>${started} Now start training with the command below.`);
        $("#join-eligibility").className = "ok";
        $("#join-eligibility").textContent = "✓ you are a trainer of this project";
        wallet.showBalance();
      } catch (err) {
        if (!status.dataset.state || status.dataset.state === "confirmed") txState(status, "failed", `✗ ${escapeHtml(describe(err))}`);
        if (!joined) { button.hidden = false; button.disabled = false; }
      }
    });
  }

  // ---------------------------------------------------------------- verify in the browser
  async function walletVerify(button) {
    const out = $(button.dataset.target);
    try {
      const response = await fetch(`/api/projects/${button.dataset.project}/rounds/${button.dataset.round}/proof`);
      const proof = await response.json();
      if (!response.ok) throw new Error(proof.detail);
      const iface = new ethers.Interface(VERIFIER_ABI);
      const data = iface.encodeFunctionData("verifyRound", [proof.round_tag, proof.commitments, proof.scores, proof.flags, proof.reference, proof.proof]);
      const raw = await window.ethereum.request({ method: "eth_call", params: [{ to: proof.verifier, data }, "latest"] });
      const [ok] = iface.decodeFunctionResult("verifyRound", raw);
      const label = $("#verifier-label");
      const name = escapeHtml(label?.dataset.verifierName || short(proof.verifier));
      const nothing = label?.dataset.provesNothing === "true";
      out.innerHTML = ok && nothing
        ? `<span class="verify bad" data-valid="true" data-proves-nothing="true">accepted by the test verifier, which proves nothing (${name}; eth_call through your wallet)</span>`
        : ok
          ? `<span class="verify ok" data-valid="true">✓ proof valid — checked by ${name} (eth_call through your wallet)</span>`
          : `<span class="verify bad" data-valid="false">✗ proof rejected by ${name} (eth_call through your wallet)</span>`;
    } catch (err) {
      out.innerHTML = `<span class="verify bad" data-valid="false">✗ ${escapeHtml(describe(err))}</span>`;
    }
  }

  // ---------------------------------------------------------------- charts
  function charts() {
    if (!window.Chart) return;
    const data = $("#chart-data");
    if (data) {
      const d = JSON.parse(data.textContent);
      const labels = d.rounds.map((r) => `round ${r}`);
      if (d.accuracy.some((a) => a !== null)) {
        new Chart($("#accuracy-chart"), {
          type: "line",
          data: { labels, datasets: [{ label: "test accuracy (%)", data: d.accuracy.map((a) => (a === null ? null : a * 100)), tension: 0.2 }] },
          options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 100 } } },
        });
      } else {
        $("#accuracy-chart").hidden = true;
        $("#accuracy-missing").hidden = false;
      }
      new Chart($("#contribution-chart"), {
        type: "bar",
        data: { labels: d.trainers, datasets: d.shares.map((s, i) => ({ label: labels[i], data: s.map((x) => x * 100) })) },
        options: { animation: false, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: d.axis } } } },
      });
    }
    const rel = $("#reliability-data");
    if (rel) {
      const d = JSON.parse(rel.textContent);
      new Chart($("#reliability-chart"), {
        type: "line",
        data: { labels: d.labels, datasets: [{ label: "reliability (%)", data: d.reliability, stepped: true }] },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 100 } } },
      });
    }
  }

  // ---------------------------------------------------------------- wiring
  document.addEventListener("DOMContentLoaded", async () => {
    $("#wallet-button").addEventListener("click", async () => {
      try { await wallet.connect(); showError(""); } catch (err) { showError(describe(err)); }
    });
    $("#wallet-disconnect").addEventListener("click", () => { wallet.disconnect(); showError(""); });
    $("#wallet-switch").addEventListener("click", async () => {
      try { await wallet.ensureChain(); showError(""); if (wallet.account) wallet.showBalance(); } catch (err) { showError(describe(err)); }
    });
    document.addEventListener("click", (e) => {
      const send = e.target.closest("[data-action=send-tx]");
      if (send) sendJob(send);
      const verify = e.target.closest(".wallet-verify");
      if (verify) walletVerify(verify);
      const weights = e.target.closest("#generate-weights");
      if (weights && !weights.disabled) generateWeights(weights);
      const edit = e.target.closest("#job-edit");
      if (edit) { e.preventDefault(); editJob(edit); }
    });
    document.addEventListener("input", (e) => { if (e.target.closest("#job-form")) updateJobCosts(); });
    document.body.addEventListener("htmx:afterSwap", updateJobCosts);
    document.addEventListener("change", (e) => {
      const select = e.target.closest("#f-verifier");
      const box = $("#verifier-description");
      if (!select || !box || select.tagName !== "SELECT") return;
      const known = JSON.parse($("#verifier-descriptions")?.textContent || "{}")[select.value] || {};
      box.textContent = known.description || "unnamed verifier, no description";
      box.className = known.proves_nothing ? "flag" : "";
    });
    updateJobCosts();
    // The job form simulates the transaction from the connected wallet, so doomed jobs are explained early.
    document.body.addEventListener("htmx:configRequest", (e) => {
      if (wallet.account && e.detail.verb === "post") e.detail.parameters.sender = wallet.account;
    });
    const mine = $("#my-profile");
    if (mine) mine.addEventListener("click", async () => {
      try { location.href = `/trainers/${wallet.account || (await wallet.connect())}`; } catch (err) { showError(describe(err)); }
    });
    if (wallet.available()) {
      $$(".wallet-verify").forEach((b) => { b.hidden = false; });
      if (window.ethereum.on) {
        // Another account chosen in the wallet (or none: it disconnected this site) replaces the page's.
        window.ethereum.on("accountsChanged", (accounts) => { if (!wallet.disconnected) wallet.set(accounts[0] || null); });
        // Another network: say so (and offer to switch back); the balance is that of this page's chain.
        window.ethereum.on("chainChanged", async () => {
          if (!wallet.account) return;
          if (await wallet.checkChain()) { showError(""); wallet.showBalance(); }
        });
      }
    }
    const join = $("#join");
    if (join) initJoin(join);
    const project = $("#project-title");
    if (project) initProjectActions(Number(project.dataset.projectId));
    const account = $("#account-title");
    if (account) initAccount(account);
    charts();
    await wallet.restore();
  });
})();
