/**
 * Status codes and {@link RpcError}, the one error type every failure of a call, a publication
 * or a subscription rejects with.
 *
 * Codes are numbered as gRPC numbers them (`docs/protocol.md`, "Status codes"); the wire carries
 * the number, and whether retrying can help in a separate flag, which {@link RpcError.retryable}
 * keeps.
 *
 * @module
 */

/** The status codes of `docs/protocol.md`, by name. `ok` (0) is never an error and is left out. */
export const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** One of the numbers of {@link Code}. */
export type Code = (typeof Code)[keyof typeof Code];

const NAMES: readonly string[] = [
  "ok",
  "cancelled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/**
 * The snake_case name of a status code, as the protocol, logs and metrics write it
 * (`"deadline_exceeded"`); `"unknown"` for a number version 1 does not define, which receivers
 * treat as `unknown`.
 */
export function codeName(code: number): string {
  return Number.isInteger(code) && code >= 0 && code < NAMES.length ? NAMES[code]! : "unknown";
}

/**
 * Whether a code is retryable when nothing more specific is known (`Code::retryable_by_default`
 * in Rust): `resource_exhausted`, `aborted` and `unavailable`. A server's RETRYABLE flag always
 * wins over this.
 */
export function retryableByDefault(code: number): boolean {
  return code === Code.RESOURCE_EXHAUSTED || code === Code.ABORTED || code === Code.UNAVAILABLE;
}

/** What an {@link RpcError} carries besides its code and message. */
export interface RpcErrorOptions {
  /** Whether the same request, sent again, can succeed. Default: {@link retryableByDefault}. */
  retryable?: boolean;
  /** The application error declared in the service file (`error Overflow: ...`); 0 = none. */
  errorId?: number;
  /** The application error's machine-readable details (FlatBuffers bytes); empty = none. */
  details?: Uint8Array;
  /** What caused it locally (an `AbortSignal`'s reason, a transport error). */
  cause?: unknown;
}

/**
 * A failed call, publication or subscription: the gateway's ERROR or SUBSCRIPTION_ENDED, or a
 * failure the client saw itself (no connection, a deadline, a cancellation).
 *
 * `message` starts with the code's name (`"deadline_exceeded: ..."`), as the Rust client prints
 * a status; {@link RpcError.text} is the message alone.
 */
export class RpcError extends Error {
  /** The status code, 1 to 16 (see {@link Code}); codes the client does not know are 2. */
  readonly code: number;
  /** Whether sending the same request again can succeed (the gateway's RETRYABLE flag). */
  readonly retryable: boolean;
  /** The application error's id (generated code maps it to the error's name); 0 = none. */
  readonly errorId: number;
  /** The application error's details, FlatBuffers bytes; empty when there are none. */
  readonly details: Uint8Array;
  /** The message without the code's name in front. */
  readonly text: string;

  constructor(code: number, text: string, options: RpcErrorOptions = {}) {
    const known = Number.isInteger(code) && code >= 1 && code <= 16 ? code : Code.UNKNOWN;
    super(`${codeName(known)}: ${text}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RpcError";
    this.code = known;
    this.text = text;
    this.retryable = options.retryable ?? retryableByDefault(known);
    this.errorId = options.errorId ?? 0;
    this.details = options.details ?? new Uint8Array(0);
  }

  /** The code's snake_case name (`"not_found"`). */
  get codeName(): string {
    return codeName(this.code);
  }
}
