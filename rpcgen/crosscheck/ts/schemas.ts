/**
 * The corpus root types: rpcgen's reader class for each (reached through the generated
 * barrels, `corpus.scalars.Scalars`), and where flatc's TypeScript output has its class.
 */

import type * as flatbuffers from "flatbuffers";

import { corpus } from "../gen/corpus/index.js";

/** An owned object of ours. */
export interface Packable {
  pack(builder: flatbuffers.Builder): number;
}

/** A reader of ours. */
export interface Reader {
  unpack(): Packable;
}

/** The static side of one of our root reader classes. */
export interface Root {
  verify(bytes: Uint8Array): void;
  fromBytes(bytes: Uint8Array): Reader;
}

export interface Schema {
  /** Our reader class. */
  readonly ours: Root;
  /**
   * flatc's module (relative to `out/`) and class name; absent where flatc's TypeScript does not
   * compile (`FLATC_TS_BROKEN` in `tests/typescript/work.rs`).
   */
  readonly flatcModule?: string;
  readonly flatcRoot?: string;
  /** The file identifier `finish` writes, as the Rust `finish_*_buffer` does. */
  readonly identifier?: string;
  /**
   * Root string fields our object API writes with their default value where flatc's buffer
   * leaves them out, with that default (flatc's TypeScript, which has no string defaults, reads
   * them as `null` from flatc's buffer): `json::WRITTEN_DEFAULTS` on the Rust side.
   */
  readonly writtenDefaults?: Readonly<Record<string, string>>;
  /**
   * Where our verifier rejects what flatc's TypeScript object API writes for this schema, when
   * the field is absent from flatc's buffer, and why that buffer is invalid.
   */
  readonly ftsInvalid?: { readonly path: string; readonly field: string; readonly why: string };
}

export const SCHEMAS: Readonly<Record<string, Schema>> = {
  scalars: { ours: corpus.scalars.Scalars, flatcModule: "scalars/corpus/scalars.js", flatcRoot: "Scalars", identifier: "SCAL" },
  enums: { ours: corpus.enums.Enums, flatcModule: "enums/corpus/enums.js", flatcRoot: "Enums" },
  structs: { ours: corpus.structs.Structs, flatcModule: "structs/corpus/structs.js", flatcRoot: "Structs" },
  vectors: {
    ours: corpus.vectors.Vectors,
    flatcModule: "vectors/corpus/vectors.js",
    flatcRoot: "Vectors",
    writtenDefaults: { greeting: "hello", motto: "\"café\"" },
  },
  attributes: {
    ours: corpus.attrs.Attrs,
    flatcModule: "attributes/corpus/attrs.js",
    flatcRoot: "Attrs",
    ftsInvalid: {
      path: "Attrs.nested<Ordered>",
      field: "nested",
      why: "flatc's object API writes an absent `nested_flatbuffer` field as an empty vector, which is not a buffer (the C++ and Rust verifiers reject it too)",
    },
  },
  unions: { ours: corpus.unions.Drawing, flatcModule: "unions/corpus/unions.js", flatcRoot: "Drawing" },
  union_variants: { ours: corpus.variants.Board, flatcModule: "union_variants/corpus/variants.js", flatcRoot: "Board" },
  keywords: { ours: corpus.keywords.Root, flatcModule: "keywords/corpus/keywords.js", flatcRoot: "Root" },
  namespaces: { ours: corpus.ns.World, flatcModule: "namespaces/corpus/ns.js", flatcRoot: "World" },
  rpc: { ours: corpus.rpc.Request, flatcModule: "rpc/corpus/rpc.js", flatcRoot: "Request" },
  crlf: {
    ours: corpus.crlf.Line,
    flatcModule: "crlf/corpus/crlf.js",
    flatcRoot: "Line",
    identifier: "CRLF",
    writtenDefaults: { text: "crlf" },
  },
  keys: { ours: corpus.keys.Keys },
  deep: { ours: corpus.deep.Tree },
};

export function schema(name: string): Schema {
  const found = SCHEMAS[name];
  if (found === undefined) throw new Error(`unknown corpus schema \`${name}\``);
  return found;
}
