#!/usr/bin/env node
// A native-solc stand-in backed by solc-js (npm `solc`), for offline machines.
// Speaks the two parts of the solc CLI that py-solc-x, forge and ezkl use:
//   --version          prints "solc, the solidity compiler ...\nVersion: X+commit.Y..."
//   --standard-json    reads Standard JSON on stdin, writes Standard JSON on stdout
// Imports are resolved against --base-path and every --include-path (and the
// current directory). Other flags (--allow-paths, ...) are accepted and ignored.
// SOLC_SHIM_PACKAGE selects the npm package (default "solc"; e.g. "solc-0.8.20").
"use strict";
const fs = require("fs");
const path = require("path");

const pkg = process.env.SOLC_SHIM_PACKAGE || "solc";
const solc = require(require.resolve(pkg, { paths: [path.join(__dirname, "..", "node_modules"), process.cwd()] }));
const args = process.argv.slice(2);

if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc-shim: only --version and --standard-json are supported\n");
  process.exit(2);
}

const roots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--base-path" || args[i] === "--include-path") roots.push(path.resolve(args[++i]));
  else if (args[i].startsWith("--base-path=") || args[i].startsWith("--include-path=")) roots.push(path.resolve(args[i].split("=")[1]));
}

function findImports(importPath) {
  for (const root of roots) {
    const candidate = path.isAbsolute(importPath) ? importPath : path.join(root, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `File not found in ${roots.join(", ")}: ${importPath}` };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
