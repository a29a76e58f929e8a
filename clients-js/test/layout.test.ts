// The package's modules depend one way: src/index.ts lists every source file in an order where
// each imports (types included) only files further down. This checks the list against the
// imports, so that neither a circle between two files nor a stale list can creep in.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, posix, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

/** Every `.ts` file under src/, as a path relative to it (`protocol/frame.ts`). */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [relative(SRC, path).split("\\").join("/")] : [];
  });
}

/** The files of the package that `file` imports or re-exports, statically or dynamically. */
function localImports(file: string): string[] {
  const text = readFileSync(join(SRC, file), "utf8");
  const found = new Set<string>();
  for (const match of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
    const target = posix.normalize(posix.join(posix.dirname(file), match[1]!)).replace(/\.js$/, ".ts");
    found.add(target);
  }
  return [...found];
}

/** The order stated in src/index.ts: its "- `file.ts`: ..." lines. */
function statedOrder(): string[] {
  const header = readFileSync(join(SRC, "index.ts"), "utf8").split("*/")[0]!;
  return [...header.matchAll(/^ \* - `([\w/]+\.ts)`/gm)].map((m) => m[1]!);
}

test("src/index.ts lists every source file once", () => {
  const order = statedOrder();
  assert.deepEqual([...order].sort(), sources().sort());
});

test("every file imports only files listed after it in src/index.ts", () => {
  const order = statedOrder();
  const upward: string[] = [];
  for (const file of order) {
    for (const target of localImports(file)) {
      const at = order.indexOf(target);
      assert.ok(at >= 0, `${file} imports ${target}, which is not a source file`);
      if (at <= order.indexOf(file)) upward.push(`${file} -> ${target}`);
    }
  }
  assert.deepEqual(upward, [], "imports against the stated order");
});

test("the import check sees type-only and dynamic imports", () => {
  // Guards the regular expression above: connection.ts imports types and values, node.ts
  // loads `ws` dynamically (a package, not a file: not counted).
  assert.ok(localImports("connection.ts").includes("transport.ts"), "import type");
  assert.ok(localImports("connection.ts").includes("call.ts"));
  assert.ok(localImports("protocol/index.ts").includes("protocol/frame.ts"), "export * from");
  assert.ok(!localImports("node.ts").some((f) => f.includes("ws")));
});
