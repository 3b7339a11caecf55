// Marketplace web UI: the browser wallet (EIP-1193 via ethers v6), transaction following, charts.
// The server never signs anything: it prepares unsigned transactions; the user's wallet signs them.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const pct = (bps) => `${(bps / 100).toFixed(bps % 100 ? 2 : 0)}%`;
  const short = (a) => `${a.slice(0, 6)}…${a.slice(-4)}`;
  const CHAIN_ID = BigInt(document.body.dataset.chainId);
  const VERIFIER_ABI = ["function verifyRound(bytes32 roundTag, bytes32[] commitments, uint256[] scores, bool[] flags, bytes proof) view returns (bool)"];

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
      await this.ensureChain();
      this.set(accounts[0]);
      return this.account;
    },
    async restore() {
      if (!this.available()) return;
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
      if (this.account) {
        link.textContent = short(this.account);
        link.href = `/trainers/${this.account}`;
        link.title = this.account;
      }
      document.dispatchEvent(new CustomEvent("wallet:changed", { detail: this.account }));
    },
    async ensureChain() {
      const have = BigInt(await window.ethereum.request({ method: "eth_chainId" }));
      if (have === CHAIN_ID) return;
      try {
        await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId: "0x" + CHAIN_ID.toString(16) }] });
      } catch (_) {
        throw new Error(`Your wallet is on chain ${have}; switch it to chain ${CHAIN_ID} (${document.body.dataset.network}).`);
      }
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

  /** Polls the server until the transaction is mined; resolves with its status, rejects if it failed. */
  async function follow(hash, el) {
    el.innerHTML = `Sent <code>${escapeHtml(hash)}</code>, waiting for confirmation…`;
    for (let i = 0; i < 1200; i++) {
      const response = await fetch(`/api/tx/${hash}`);
      const body = await response.json();
      if (response.ok && body.status === "confirmed") return body;
      if (response.ok && body.status === "failed") throw new Error(`The transaction failed: ${body.error}`);
      if (!response.ok && response.status !== 404) throw new Error(body.detail || `HTTP ${response.status}`);
      await sleep(i < 20 ? 300 : 1500);
    }
    throw new Error("Still not mined; check your wallet.");
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

  // ---------------------------------------------------------------- post a job
  async function sendJob(button) {
    const section = button.closest("[data-tx]");
    const status = $(button.dataset.target);
    button.disabled = true;
    try {
      const tx = JSON.parse(section.dataset.tx);
      const hash = await wallet.send(tx);
      const result = await follow(hash, status);
      const link = result.project_id ? ` <a id="job-created-link" href="/projects/${result.project_id}">Project ${result.project_id}</a> created.` : "";
      status.innerHTML = `<span class="ok">✓ Confirmed in block ${result.block_number}.</span>${link}`;
    } catch (err) {
      status.innerHTML = `<span class="bad">✗ ${escapeHtml(describe(err))}</span>`;
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- what a job costs (live, on the form)
  const fmtEth = (wei) => ethers.formatEther(wei).replace(/\.0$/, "");
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
      let text = `${fmtEth(escrow + fee)} ETH: ${fmtEth(escrow)} ETH escrowed + ${fmtEth(fee)} ETH protocol fee (burned)`;
      const bar = Number($("#f-min_reliability_pct").value || 0);
      const minTrainers = BigInt(Math.max(1, Math.trunc(Number($("#f-min_trainers").value) || 1)));
      if (bar > 0) {
        const required = (budget * 10000n) / (minTrainers * feeBps);
        text += `; your reliability bar will require ${fmtEth(required)} ETH of record available to each trainer ` +
          "(the budget per guaranteed trainer, earned in independent projects; joining reserves it until withdrawal, a flagged round spends it)";
      }
      out.textContent = text;
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
  /** Replaces the given elements of the page with their fresh server rendering (after the index saw a transaction). */
  async function refreshSections(ids) {
    const response = await fetch(location.pathname, { headers: { accept: "text/html" } });
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of ids) {
      const now = document.getElementById(id);
      const fresh = doc.getElementById(id);
      if (now && fresh) now.replaceWith(fresh);
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
          amount.innerHTML = state.allowed
            ? `You can withdraw <strong id="withdrawable">${escapeHtml(body.withdrawable_eth)} ETH</strong> as <code>${escapeHtml(short(account))}</code>.`
            : `<span class="empty">${escapeHtml(state.reason)}</span>`;
        }
      }
    }
    async function run(button) {
      const action = button.dataset.txAction;
      button.disabled = true;
      try {
        const sender = wallet.account || (await wallet.connect());
        const tx = await postJson(`/api/tx/${action}`, { project_id: pid, sender });
        const hash = await wallet.send(tx);
        const result = await follow(hash, statusOf(action));
        // The server re-indexed when it saw the receipt: re-render status, owner actions and payouts.
        await refreshSections(["project-status", "rounds-done", "project-state", "payouts-section"]);
        await load(wallet.account);
        statusOf(action).innerHTML = `<span class="ok" id="action-done" data-action="${escapeHtml(action)}">✓ ${escapeHtml(tx.summary)}: confirmed in block ${result.block_number}.</span>`;
      } catch (err) {
        statusOf(action).innerHTML = `<span class="bad">✗ ${escapeHtml(describe(err))}</span>`;
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

  // ---------------------------------------------------------------- join as trainer
  function initJoin(section) {
    const pid = Number(section.dataset.projectId);
    const button = $("#join-button");
    const status = $("#join-status");
    async function refresh(account) {
      $("#join-account").textContent = account ? `connected as ${account}` : "";
      $("#join-connect").hidden = !!account;
      if (!account) return;
      const response = await fetch(`/api/trainers/${account}`);
      const trainer = await response.json();
      if (!response.ok) { $("#join-eligibility").textContent = trainer.detail; return; }
      $("#join-reliability").textContent = pct(trainer.reliability_bps);
      const min = Number(section.dataset.minReliability);
      // A project with a reliability bar also requires an available record (wei): earned in independent
      // projects and not reserved by the bar of another project this trainer is in (availableOf).
      const record = trainer.track_record;
      const required = BigInt(section.dataset.requiredEarned || "0");
      const available = BigInt(record.available);
      for (const [id, eth] of [["#join-available", record.available_eth], ["#join-earned", record.earned_eth],
                               ["#join-reserved", record.reserved_eth]]) {
        const box = $(id);
        if (box) box.textContent = `${eth} ETH`;
      }
      let problem = null;
      if (trainer.projects.some((p) => p.project_id === pid)) problem = "you already joined this project";
      else if (section.dataset.status !== "open") problem = `the project is ${section.dataset.status}; joining is closed`;
      else if ([section.dataset.owner, section.dataset.aggregator].includes(account)) problem = "the owner and the aggregator cannot train";
      else if (trainer.reliability_bps < min) problem = `below the project's minimum of ${pct(min)}`;
      else if (min > 0 && available < required) {
        problem = `you have ${record.available_eth} ETH of record available (${record.earned_eth} ETH earned, ` +
          `${record.reserved_eth} ETH reserved by other bars); this project requires ${fmtEth(required)} ETH`;
      }
      $("#join-eligibility").textContent = problem ? `✗ ${problem}` : "✓ you can join";
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
        const tx = await postJson("/api/tx/join", { project_id: pid, sender: wallet.account });
        const hash = await wallet.send(tx);
        const result = await follow(hash, status);
        const started = result.events.includes("TrainingStarted") ? " The project is full: training has started." : "";
        status.innerHTML = `<span class="ok" id="join-done">✓ Joined project ${pid} in block ${result.block_number}.</span>${started} Now start training with the command below.`;
      } catch (err) {
        status.innerHTML = `<span class="bad">✗ ${escapeHtml(describe(err))}</span>`;
        button.disabled = false;
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
      const data = iface.encodeFunctionData("verifyRound", [proof.round_tag, proof.commitments, proof.scores, proof.flags, proof.proof]);
      const raw = await window.ethereum.request({ method: "eth_call", params: [{ to: proof.verifier, data }, "latest"] });
      const [ok] = iface.decodeFunctionResult("verifyRound", raw);
      out.innerHTML = ok
        ? `<span class="verify ok" data-valid="true">✓ proof valid (eth_call through your wallet)</span>`
        : `<span class="verify bad" data-valid="false">✗ proof rejected (eth_call through your wallet)</span>`;
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
        options: { animation: false, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "share of the round's reward (%)" } } } },
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
    document.addEventListener("click", (e) => {
      const send = e.target.closest("[data-action=send-tx]");
      if (send) sendJob(send);
      const verify = e.target.closest(".wallet-verify");
      if (verify) walletVerify(verify);
      const weights = e.target.closest("#generate-weights");
      if (weights && !weights.disabled) generateWeights(weights);
    });
    document.addEventListener("input", (e) => { if (e.target.closest("#job-form")) updateJobCosts(); });
    document.body.addEventListener("htmx:afterSwap", updateJobCosts);
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
      if (window.ethereum.on) window.ethereum.on("accountsChanged", (accounts) => wallet.set(accounts[0] || null));
    }
    const join = $("#join");
    if (join) initJoin(join);
    const project = $("#project-title");
    if (project) initProjectActions(Number(project.dataset.projectId));
    charts();
    await wallet.restore();
  });
})();
