// The stubs `rpcgen ts` generates from a service file, for tests that call real services the
// typed way: generated into a temporary directory, bundled by esbuild next to the compiled tests
// (so that `flatbuffers` and `@rpcgen/client` resolve from the workspace), and imported.

import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { ROOT } from "./gateway.js";

/** The generated module of `service` (a path under the repository, e.g.
 *  `schemas/tso/tso.service`): its `examples` namespace and the rest. Untyped: the test names
 *  what it uses. */
// The generated code is not known to the compiler of the tests.
export async function generatedStubs(service: string, name: string): Promise<any> {
  const rpcgen = process.env.RPCGEN_BIN ?? join(ROOT, "target/debug/rpcgen");
  const out = mkdtempSync(join(tmpdir(), `rpcgen-${name}-ts-`));
  const generated = spawnSync(rpcgen, ["ts", join(ROOT, service), "--out", out], { encoding: "utf8" });
  if (generated.status !== 0) {
    throw new Error(`${rpcgen} ts failed (${generated.error ?? generated.status}):\n${generated.stderr}`);
  }
  const esbuild = await import("esbuild");
  const outfile = join(fileURLToPath(new URL("..", import.meta.url)), `generated-${name}.mjs`);
  await esbuild.build({
    entryPoints: [join(out, "index.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outfile,
    logLevel: "warning",
  });
  return import(pathToFileURL(outfile).href);
}
