// A test EIP-1193 wallet injected into every page before the app's scripts run.
// It answers account requests with the test account and forwards every other JSON-RPC call to the
// local anvil node; eth_sendTransaction is signed by anvil with the test account (an unlocked dev
// account), so the page's wallet code path is the one real users hit with MetaMask.
// Configured by window.__TEST_WALLET__ = {rpcUrl, account} (set by a preceding init script). Tests drive it further:
// ethereum.emit(event, value) fires a wallet event (accountsChanged, chainChanged); ethereum.onChain(hex) makes it
// report another chain until switched back; ethereum.forgetChain() makes it not know the page's chain until
// wallet_addEthereumChain; ethereum.hold() keeps the next eth_sendTransaction waiting until ethereum.release()
// (true: send it; false: the user rejects it, error 4001); ethereum.replaceLast({cancel}) replaces the last transaction
// it sent while that is still pending, as a wallet's "speed up" (the same call) or "cancel" (0 ETH to oneself) does:
// the same nonce, twice the fees; it returns the replacement's hash.
(() => {
  const listeners = {};
  const log = [];
  let nextId = 1;
  let connected = false; // like MetaMask: no accounts until the page asks with eth_requestAccounts
  let chainOverride = null; // the chain the wallet says it is on, when not the node's
  let knowsChain = true; // whether switching to the node's chain works without wallet_addEthereumChain
  let held = null; // {promise, resolve} of a send waiting for release()
  let lastSent = null; // the hash of the last transaction sent
  const added = [];
  const config = () => window.__TEST_WALLET__;

  async function rpc(method, params) {
    const response = await fetch(config().rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params: params || [] }),
    });
    const body = await response.json();
    if (body.error) {
      const err = new Error(body.error.message);
      err.code = body.error.code;
      err.data = body.error.data;
      throw err;
    }
    return body.result;
  }

  const ethereum = {
    isTestWallet: true,
    log,
    async request({ method, params }) {
      log.push(method);
      const account = config().account;
      switch (method) {
        case "eth_requestAccounts":
          connected = true;
          return [account];
        case "eth_accounts":
          return connected ? [account] : [];
        case "eth_chainId":
          return chainOverride || (await rpc("eth_chainId", []));
        case "wallet_addEthereumChain":
          added.push(params[0]);
          knowsChain = true;
          return null;
        case "wallet_switchEthereumChain": {
          const have = await rpc("eth_chainId", []);
          if (BigInt(params[0].chainId) !== BigInt(have) || !knowsChain) {
            const err = new Error("Unrecognized chain");
            err.code = 4902;
            throw err;
          }
          if (chainOverride) { chainOverride = null; ethereum.emit("chainChanged", have); }
          return null;
        }
        case "eth_sendTransaction": {
          if (held) {
            const send = await held.promise;
            held = null;
            if (!send) {
              const err = new Error("User rejected the request.");
              err.code = 4001;
              throw err;
            }
          }
          const tx = { ...params[0], from: account };
          lastSent = await rpc("eth_sendTransaction", [tx]);
          return lastSent;
        }
        default:
          return await rpc(method, params);
      }
    },
    added,
    emit(event, value) { (listeners[event] || []).forEach((fn) => fn(value)); },
    onChain(hex) { chainOverride = hex; ethereum.emit("chainChanged", hex); },
    forgetChain() { knowsChain = false; },
    hold() { let resolve; const promise = new Promise((r) => { resolve = r; }); held = { promise, resolve }; },
    release(send) { held.resolve(send); },
    async replaceLast({ cancel = false } = {}) {
      const old = await rpc("eth_getTransactionByHash", [lastSent]);
      if (!old || old.blockNumber) throw new Error(`transaction ${lastSent} is not pending`);
      const bump = (hex) => "0x" + (2n * BigInt(hex) + 10n ** 9n).toString(16); // twice, and 1 gwei more
      const call = cancel ? { to: old.from, value: "0x0", data: "0x" } : { to: old.to, value: old.value, data: old.input };
      const tx = { from: old.from, ...call, nonce: old.nonce, gas: old.gas,
        maxFeePerGas: bump(old.maxFeePerGas || old.gasPrice), maxPriorityFeePerGas: bump(old.maxPriorityFeePerGas || "0x0") };
      lastSent = await rpc("eth_sendTransaction", [tx]);
      return lastSent;
    },
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); return ethereum; },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); return ethereum; },
  };
  Object.defineProperty(window, "ethereum", { value: ethereum, writable: false, configurable: false });
  window.dispatchEvent(new Event("ethereum#initialized"));
})();
