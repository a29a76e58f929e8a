// The devices the signed-in user may see, as the page tracks them: identity, colour, newest fix
// and the fixes of the last few minutes (the trail). Filled from the `devices` RPC, `history`
// and the `position` topic; drawn by fleetmap.ts and devicelist.ts.

/** One position, in the page's units (numbers: ms since the epoch fit in 2^53). */
export interface Fix {
  readonly timeMs: number;
  readonly receivedMs: number;
  readonly lat: number;
  readonly lon: number;
  readonly speedMps: number;
  readonly headingDeg: number;
}

/** How long a device's trail reaches back. */
export const TRAIL_MS = 5 * 60_000;
/** A device that has not reported for this long is shown as stale. */
export const STALE_MS = 60_000;

/** Distinct colours that read on the basemap's light land, water and parks. */
const PALETTE = ["#e6194b", "#3169e0", "#f58231", "#911eb4", "#0f9d8a", "#d6336c", "#8a6d00", "#4363d8",
  "#b8316d", "#2f8f2f", "#9a4dd6", "#c0392b", "#1b7fa6", "#a0522d", "#6c5ce7", "#008080"];

export class Device {
  /** The newest fix (by fix time), if any. */
  last: Fix | undefined;
  /** When the tracker last received a report from it (ms since the epoch; 0: never). */
  lastSeenMs: number;
  /** Fixes of the last {@link TRAIL_MS}, oldest first. */
  trail: Fix[] = [];
  /** Whether {@link trail} is kept (with thousands of devices, only the selected one's is). */
  keepsTrail = true;

  constructor(
    readonly id: bigint,
    readonly name: string,
    readonly color: string,
    lastSeenMs: number,
  ) {
    this.lastSeenMs = lastSeenMs;
  }

  /** The id as the topic key and data attributes write it (decimal). */
  get key(): string {
    return this.id.toString();
  }

  isStale(nowMs: number): boolean {
    return this.lastSeenMs <= 0 || nowMs - this.lastSeenMs > STALE_MS;
  }

  /**
   * Takes a fix; returns whether it is the new newest one. Fixes arrive out of order after a
   * device replays what it could not send, so the trail is kept sorted by fix time.
   */
  add(fix: Fix, nowMs: number): boolean {
    this.lastSeenMs = Math.max(this.lastSeenMs, fix.receivedMs);
    const newest = !this.last || fix.timeMs >= this.last.timeMs;
    if (newest) this.last = fix;
    if (this.keepsTrail && nowMs - fix.timeMs <= TRAIL_MS) {
      let i = this.trail.length;
      while (i > 0 && (this.trail[i - 1] as Fix).timeMs > fix.timeMs) i -= 1;
      if ((this.trail[i - 1] as Fix | undefined)?.timeMs !== fix.timeMs) this.trail.splice(i, 0, fix);
    }
    this.prune(nowMs);
    return newest;
  }

  /** Drops the trail's fixes older than {@link TRAIL_MS}. */
  prune(nowMs: number): void {
    let drop = 0;
    while (drop < this.trail.length && nowMs - (this.trail[drop] as Fix).timeMs > TRAIL_MS) drop += 1;
    if (drop > 0) this.trail.splice(0, drop);
  }
}

/** The colour of the `index`-th device (in the order the `devices` RPC lists them). */
export function colorOf(index: number): string {
  return PALETTE[index % PALETTE.length] as string;
}
