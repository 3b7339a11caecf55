// A test EIP-1193 wallet injected into every page before the app's scripts run.
// It answers account requests with the test account and forwards every other JSON-RPC call to the
// local anvil node; eth_sendTransaction is signed by anvil with the test account (an unlocked dev
// account), so the page's wallet code path is the one real users hit with MetaMask.
// Configured by window.__TEST_WALLET__ = {rpcUrl, account} (set by a preceding init script).
(() => {
  const listeners = {};
  const log = [];
  let nextId = 1;
  let connected = false; // like MetaMask: no accounts until the page asks with eth_requestAccounts
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
        case "wallet_switchEthereumChain": {
          const have = await rpc("eth_chainId", []);
          if (BigInt(params[0].chainId) !== BigInt(have)) {
            const err = new Error("Unrecognized chain");
            err.code = 4902;
            throw err;
          }
          return null;
        }
        case "eth_sendTransaction": {
          const tx = { ...params[0], from: account };
          return await rpc("eth_sendTransaction", [tx]);
        }
        default:
          return await rpc(method, params);
      }
    },
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); return ethereum; },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); return ethereum; },
  };
  Object.defineProperty(window, "ethereum", { value: ethereum, writable: false, configurable: false });
  window.dispatchEvent(new Event("ethereum#initialized"));
})();
