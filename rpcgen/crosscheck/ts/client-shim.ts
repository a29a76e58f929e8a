/**
 * A stand-in for `@rpcgen/client`'s main entry while the client package is not in this branch:
 * the types and values of the contract between the client and rpcgen's generated stubs
 * (`/work/briefs/i6-contract.md`, documented in docs/generated-ts.md), so that the stubs compile
 * and run against it. The test setup uses the real `clients-js/src/index.ts` instead as soon as
 * it exists.
 */

export interface MethodDesc {
  readonly id: number;
  readonly name: string;
  readonly idempotent: boolean;
}
export interface TopicDesc {
  readonly id: number;
  readonly name: string;
}
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}
export type Selector = { key: string } | { allKeys: true } | { unkeyed: true };
export interface TopicEvent<T> {
  readonly key: string;
  readonly message: T;
  readonly missed: number;
  readonly resumed: boolean;
}
export interface Subscription<T> extends AsyncIterable<TopicEvent<T>> {
  close(): void;
  readonly ended: Promise<RpcError | undefined>;
}
export interface SubscribeOptions<T> {
  decode: (payload: Uint8Array) => T;
  signal?: AbortSignal;
  timeoutMs?: number;
  onDecodeError?: (error: unknown, key: string) => void;
}
export declare class Client {
  call(method: MethodDesc, request: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
  publish(topic: TopicDesc, key: string, payload: Uint8Array, options?: CallOptions): Promise<void>;
  subscribe<T>(topic: TopicDesc, selector: Selector, options: SubscribeOptions<T>): Promise<Subscription<T>>;
  close(): Promise<void>;
}
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
export interface RpcErrorOptions {
  retryable?: boolean;
  errorId?: number;
  details?: Uint8Array;
  cause?: unknown;
}
export class RpcError extends Error {
  readonly code: number;
  readonly retryable: boolean;
  readonly errorId: number;
  readonly details: Uint8Array;
  constructor(code: number, text: string, options: RpcErrorOptions = {}) {
    super(text, { cause: options.cause });
    this.name = "RpcError";
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.errorId = options.errorId ?? 0;
    this.details = options.details ?? new Uint8Array(0);
  }
}
