// Hardhat 2.x configuration for people who compile and deploy with Hardhat
// (`npm install --no-save hardhat@2.29.1 @nomicfoundation/hardhat-ethers@3 ethers@6`, then
// `npx hardhat compile` / `npx hardhat run scripts/deploy.js --network testnet`).
// The Python toolchain (`marketplace compile`, `marketplace deploy`) does not need it.
//
// The compiler is the solc-js build from node_modules/solc, so nothing is downloaded.
// The `testnet` network reads the same variables as `marketplace --network testnet`:
//   MARKETPLACE_RPC_URL, MARKETPLACE_KEYSTORE + MARKETPLACE_KEYSTORE_PASSWORD or MARKETPLACE_PRIVATE_KEY
//   (scripts/accounts.js), MARKETPLACE_CHAIN_ID (optional check).
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");
const { testnetAccounts } = require("./scripts/accounts.js");
try {
  require("@nomicfoundation/hardhat-ethers"); // for scripts/deploy.js; compiling works without it
} catch {}

const SOLC_VERSION = "0.8.28";

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) return runSuper();
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: require("solc").version().replace(/\.Emscripten.*$/, ""),
  };
});

const testnet = process.env.MARKETPLACE_RPC_URL
  ? {
      url: process.env.MARKETPLACE_RPC_URL,
      accounts: testnetAccounts(process.env),
      ...(process.env.MARKETPLACE_CHAIN_ID ? { chainId: Number(process.env.MARKETPLACE_CHAIN_ID) } : {}),
    }
  : undefined;

module.exports = {
  solidity: {
    version: SOLC_VERSION,
    settings: { optimizer: { enabled: true, runs: 200 }, evmVersion: "cancun" },
  },
  paths: { sources: "./contracts", artifacts: "./build/hardhat" , cache: "./.cache/hardhat" },
  networks: {
    localhost: { url: process.env.MARKETPLACE_LOCAL_RPC_URL || "http://127.0.0.1:8545", chainId: 31337 },
    ...(testnet ? { testnet } : {}),
  },
};
