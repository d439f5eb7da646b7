// Hardhat 3 builds and tests contracts/ offline: the compiler is the solcjs WebAssembly build
// from node_modules, so Hardhat never tries to download a compiler list.
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(fileURLToPath(import.meta.url));

/** @type {import("hardhat/config").HardhatUserConfig} */
export default {
  solidity: {
    version: "0.8.37",
    path: path.join(root, "node_modules", "solc", "soljson.js"),
    settings: { evmVersion: "cancun", optimizer: { enabled: true, runs: 200 } },
  },
  paths: {
    sources: { solidity: ["contracts"] },
    tests: { solidity: "contracts/test" },
    artifacts: "artifacts-hh",
    cache: "cache-hh",
  },
  test: { solidity: { fuzz: { runs: 256, seed: "0xb0c1" } } },
};
