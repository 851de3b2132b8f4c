// Bundles the dashboard into dist/ (or ONESTOP_DASHBOARD_OUT): app.js with
// everything it imports, plus the page and its stylesheets. The server
// serves these files as they are; no Node at run time.
//
// With --browser-test, bundles the browser test (TypeScript) into .e2e/ for
// `node --test` instead.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.env.ONESTOP_DASHBOARD_OUT ?? join(here, "dist"));

if (process.argv.includes("--browser-test")) {
  const tests = join(here, ".e2e");
  await rm(tests, { recursive: true, force: true });
  await build({
    entryPoints: [join(here, "e2e/dashboard.test.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: ["node20"],
    packages: "external",
    outfile: join(tests, "dashboard.test.mjs"),
    logLevel: "warning",
  });
  process.exit(0);
}

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  outfile: join(out, "app.js"),
  legalComments: "linked",
  logLevel: "warning",
});
for (const file of ["index.html", "style.css"]) {
  await copyFile(join(here, "src", file), join(out, file));
}
await copyFile(join(here, "node_modules/chartist/dist/index.css"), join(out, "chartist.css"));
console.log(`dashboard built in ${out}`);
