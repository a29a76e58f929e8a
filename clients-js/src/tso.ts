/**
 * The timestamp oracle's client side (docs/tso.md): its 16-byte hybrid timestamps, and a client
 * that collapses concurrent callers into one call in flight, as TiKV's PD client does (and as
 * `tso::client::Collapsing` does in Rust). Callers that ask while a call is out wait for the
 * next one, which asks for all their timestamps at once; each gets its share, consecutive
 * indexes of one epoch.
 *
 * The call itself is the caller's: with the generated stubs (`rpcgen ts schemas/tso/tso.service`)
 *
 * ```ts
 * const tso = new examples.tso.TsoClient(client);
 * const timestamps = new CollapsingTimestamps(async (n) =>
 *   (await tso.timestamps(new examples.tso.TimestampsRequestT({ n }))).firstArray());
 * const t = await timestamps.timestamps(); // { epoch, index }
 * ```
 *
 * or with `client.call` and hand-built bytes, or over HTTP (`/timestamp?n=`).
 */

/** A hybrid timestamp: the Unix time in nanoseconds at which the leader opened the epoch, and
 *  the index within the epoch. Its 16-byte form (both big-endian) sorts as the values do. */
export interface Timestamp {
  readonly epoch: bigint;
  readonly index: bigint;
}

/** The byte length of a timestamp. */
export const TIMESTAMP_LENGTH = 16;

/** The most timestamps one call may take (the oracle's `MAX_BATCH`). */
export const MAX_BATCH = 1 << 20;

/** Reads the timestamp at `offset` of `bytes` (16 bytes: epoch, then index, big-endian). */
export function readTimestamp(bytes: Uint8Array, offset = 0): Timestamp {
  if (offset < 0 || bytes.length - offset < TIMESTAMP_LENGTH) {
    throw new RangeError(`a timestamp is 16 bytes; ${Math.max(0, bytes.length - offset)} at offset ${offset}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, TIMESTAMP_LENGTH);
  return { epoch: view.getBigUint64(0), index: view.getBigUint64(8) };
}

/** The 16-byte form of `t`. */
export function timestampBytes(t: Timestamp): Uint8Array {
  const bytes = new Uint8Array(TIMESTAMP_LENGTH);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, t.epoch);
  view.setBigUint64(8, t.index);
  return bytes;
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  if (a.index !== b.index) return a.index < b.index ? -1 : 1;
  return 0;
}

/** Asks the oracle for `n` consecutive timestamps of one epoch; resolves to the first's 16 bytes
 *  (or more: the first 16 are read). Rejects as the call does (`Code.UNAVAILABLE` while the
 *  oracle changes leader: retry). */
export type TimestampsCall = (n: number) => Promise<Uint8Array>;

interface Waiting {
  n: number;
  resolve: (t: Timestamp) => void;
  reject: (e: unknown) => void;
}

/** Timestamps for many concurrent callers, one call in flight at a time. */
export class CollapsingTimestamps {
  private readonly queue: Waiting[] = [];
  private inFlight = false;
  /** Calls made, and timestamps they asked for: how well callers were collapsed. */
  calls = 0;
  asked = 0;

  constructor(private readonly call: TimestampsCall) {}

  /** `n` (1 to {@link MAX_BATCH}) consecutive timestamps of one epoch: the first is returned, the
   *  others follow it in index. Rejects with the error of the call that would have carried them,
   *  or a `RangeError` for an `n` out of range. */
  timestamps(n = 1): Promise<Timestamp> {
    if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) {
      return Promise.reject(new RangeError(`asked for ${n} timestamps: between 1 and ${MAX_BATCH}`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ n, resolve, reject });
      // Callers of the same turn of the event loop join the same call.
      if (!this.inFlight) {
        this.inFlight = true;
        queueMicrotask(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      let total = 0;
      let take = 0;
      while (take < this.queue.length && total + this.queue[take]!.n <= MAX_BATCH) {
        total += this.queue[take]!.n;
        take += 1;
      }
      const batch = this.queue.splice(0, take);
      this.calls += 1;
      this.asked += total;
      try {
        const first = readTimestamp(await this.call(total));
        let index = first.index;
        for (const waiting of batch) {
          waiting.resolve({ epoch: first.epoch, index });
          index += BigInt(waiting.n);
        }
      } catch (e) {
        for (const waiting of batch) waiting.reject(e);
      }
    }
    this.inFlight = false;
  }
}
