// Deploy the marketplace with Hardhat (for people who use Hardhat; `marketplace deploy` does the
// same from Python). Needs `npm install --no-save hardhat@2.29.1 @nomicfoundation/hardhat-ethers@3 ethers@6`.
//   npx hardhat run scripts/deploy.js --network testnet
// Deploys ReliabilityRegistry, MarketDisputes (the market's rejections and disputes, run in the market's storage)
// and TrainingMarket (the signer becomes admin of the registry and the market) and
// authorizes the market in the registry. It never deploys the test verifier: approve a real
// verifier with TrainingMarket.setVerifierApproval once it is deployed.
const hre = require("hardhat");

async function main() {
  const [admin] = await hre.ethers.getSigners();
  if (!admin) {
    throw new Error(
      "no account to deploy from: set MARKETPLACE_KEYSTORE and MARKETPLACE_KEYSTORE_PASSWORD, or MARKETPLACE_PRIVATE_KEY",
    );
  }
  const { chainId } = await hre.ethers.provider.getNetwork();
  console.log(`deploying from ${admin.address} on chain ${chainId}`);
  const registry = await hre.ethers.deployContract("ReliabilityRegistry", [admin.address]);
  await registry.waitForDeployment();
  const disputes = await hre.ethers.deployContract("MarketDisputes", []);
  await disputes.waitForDeployment();
  const market = await hre.ethers.deployContract("TrainingMarket", [
    admin.address,
    await registry.getAddress(),
    await disputes.getAddress(),
  ]);
  await market.waitForDeployment();
  await (await registry.setMarketAuthorization(await market.getAddress(), true)).wait();
  // The block each contract was created in (its creation receipt), where event queries start.
  const createdIn = async (contract) => (await contract.deploymentTransaction().wait()).blockNumber;
  const record = {
    network: hre.network.name,
    chain_id: Number(chainId),
    contracts: {
      ReliabilityRegistry: { address: await registry.getAddress(), block_number: await createdIn(registry) },
      MarketDisputes: { address: await disputes.getAddress(), block_number: await createdIn(disputes) },
      TrainingMarket: { address: await market.getAddress(), block_number: await createdIn(market) },
    },
  };
  console.log(JSON.stringify(record, null, 2));
  console.log(`save this as deployments/${hre.network.name}.json to use it from the marketplace CLI`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
