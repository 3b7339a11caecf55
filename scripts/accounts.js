// The signing key of the `testnet` network in hardhat.config.js, read from the same variables as the Python
// CLI (marketplace/adapters/chain/accounts.py): MARKETPLACE_KEYSTORE (a keystore JSON file, its password in
// MARKETPLACE_KEYSTORE_PASSWORD), else MARKETPLACE_PRIVATE_KEY. Without either: no account (deploying then
// fails with a message naming the variables). Plain Node: `ethers` decrypts the keystore.
const fs = require("fs");

function testnetAccounts(env = process.env) {
  if (env.MARKETPLACE_KEYSTORE) {
    if (env.MARKETPLACE_KEYSTORE_PASSWORD === undefined) {
      throw new Error(
        `MARKETPLACE_KEYSTORE=${env.MARKETPLACE_KEYSTORE} needs its password in MARKETPLACE_KEYSTORE_PASSWORD`,
      );
    }
    const { Wallet } = require("ethers");
    const json = fs.readFileSync(env.MARKETPLACE_KEYSTORE, "utf8");
    return [Wallet.fromEncryptedJsonSync(json, env.MARKETPLACE_KEYSTORE_PASSWORD).privateKey];
  }
  if (env.MARKETPLACE_PRIVATE_KEY) return [env.MARKETPLACE_PRIVATE_KEY];
  return [];
}

module.exports = { testnetAccounts };
