/**
 * The deadlines of a client's requests on one timer: {@link Deadlines}, a wheel of coarse slots.
 *
 * A timer per call costs more than the call's own work once many calls are in flight (Node
 * keeps every timer in its lists, and creating and clearing one allocates). Here a deadline
 * goes into the slot of its tick ({@link TICK_MS} wide, rounded up), slots are kept in a heap
 * by tick, and one timer waits for the earliest slot. Adding a deadline to an existing slot and
 * removing one are O(1) (each entry is linked into its slot's list); a new slot costs a heap
 * push. An entry expires on the first check at or after its deadline, never before it: at most
 * a tick and 2 ms late (the timer's delay is rounded up, with a margin), plus the timer's own
 * lateness. With nothing scheduled, no timer keeps the program running.
 *
 * @module
 */

/** The width of a slot, in ms: about how late, at most, a deadline is noticed. */
export const TICK_MS = 4;

/**
 * The longest delay a timer takes (2^31 - 1 ms, about 24.8 days): Node and browsers fire a
 * longer one at once. A later deadline waits in steps.
 */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** What the wheel needs of time: a clock in ms and a one-shot timer. Tests pass a fake one. */
export interface Clock {
  now(): number;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
  /**
   * Whether a timer keeps the program running (Node's `ref`/`unref`; nothing elsewhere): one
   * that waits while nothing is scheduled must not.
   */
  holdTimer(handle: unknown, hold: boolean): void;
}

/** `performance.now()` and `setTimeout`. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (callback, ms) => setTimeout(callback, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  holdTimer: (handle, hold) => {
    const timer = handle as { ref?: () => void; unref?: () => void };
    if (hold) timer.ref?.();
    else timer.unref?.();
  },
};

/**
 * Something with a deadline: a request, as {@link Deadlines} schedules it. The links are the
 * wheel's; subclasses only set {@link Timed.deadline} and implement {@link Timed.expire}.
 */
export abstract class Timed {
  /** When it expires, on the wheel's clock; `Infinity` for never. */
  deadline = Infinity;
  /** The slot holding it and its neighbours there, while scheduled. */
  slot: Slot | null = null;
  prevTimed: Timed | null = null;
  nextTimed: Timed | null = null;

  /** The deadline passed. Called at most once per scheduling, from the wheel's timer. */
  abstract expire(): void;

  /** Takes it off the wheel it is scheduled on, if any (when it settles before its deadline). */
  unschedule(): void {
    const slot = this.slot;
    if (slot !== null) slot.wheel.remove(this);
  }
}

/** The entries whose deadlines fall in one tick. */
class Slot {
  head: Timed | null = null;
  /** Its position in the wheel's heap. */
  index = -1;

  constructor(
    readonly wheel: Deadlines,
    /** `ceil(deadline / TICK_MS)` of every entry. */
    readonly tick: number,
  ) {}
}

/** One timer for many deadlines; see the module's description. */
export class Deadlines {
  private readonly slots = new Map<number, Slot>();
  /** Non-empty slots, a binary min-heap by tick. */
  private readonly heap: Slot[] = [];
  /** The slot used last: calls made together with one timeout share it. */
  private last: Slot | null = null;
  private timer: unknown = undefined;
  /** The tick the timer waits for; `Infinity` when there is no timer. */
  private armedTick = Infinity;
  /** Whether the timer keeps the program running: only while something is scheduled. */
  private held = false;
  /** Where entries wait while the timer expires them: removing one there still counts. */
  private readonly expiring = new Slot(this, -1);

  constructor(private readonly clock: Clock = realClock) {}

  /** Entries scheduled now. */
  get size(): number {
    let n = 0;
    for (const slot of this.heap) for (let t = slot.head; t !== null; t = t.nextTimed) n += 1;
    return n;
  }

  /** Schedules `entry` to expire at its deadline (a finite one); it must not be scheduled already. */
  add(entry: Timed): void {
    const tick = Math.ceil(entry.deadline / TICK_MS);
    let slot = this.last;
    if (slot === null || slot.tick !== tick) {
      slot = this.slots.get(tick) ?? this.newSlot(tick);
      this.last = slot;
    }
    const head = slot.head;
    entry.slot = slot;
    entry.prevTimed = null;
    entry.nextTimed = head;
    if (head !== null) head.prevTimed = entry;
    slot.head = entry;
    if (tick < this.armedTick) this.arm(tick);
    else if (!this.held) this.hold(true);
  }

  /** Takes `entry` off the wheel (it will not expire). */
  remove(entry: Timed): void {
    const slot = entry.slot;
    if (slot === null) return;
    entry.slot = null;
    if (slot === this.expiring) return;
    const { prevTimed: prev, nextTimed: next } = entry;
    if (prev !== null) prev.nextTimed = next;
    else slot.head = next;
    if (next !== null) next.prevTimed = prev;
    entry.prevTimed = null;
    entry.nextTimed = null;
    if (slot.head === null) this.dropSlot(slot);
  }

  private newSlot(tick: number): Slot {
    const slot = new Slot(this, tick);
    this.slots.set(tick, slot);
    slot.index = this.heap.length;
    this.heap.push(slot);
    this.up(slot.index);
    return slot;
  }

  private dropSlot(slot: Slot): void {
    this.slots.delete(slot.tick);
    if (this.last === slot) this.last = null;
    const at = slot.index;
    const end = this.heap.pop()!;
    slot.index = -1;
    if (end !== slot) {
      this.heap[at] = end;
      end.index = at;
      this.down(at);
      this.up(end.index);
    }
    // The timer stays as it is (if it was for this slot, it wakes up once for nothing and
    // waits for the next). Calls answered together often empty the wheel for a moment: with
    // nothing left the timer only stops keeping the program running, which is cheaper than
    // clearing it and setting another for the next call.
    if (this.heap.length === 0 && this.held) this.hold(false);
  }

  private arm(tick: number): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.armedTick = tick;
    // One ms more: Node's timers may fire up to a millisecond before `performance.now()` says
    // the delay is over, and an early wake-up costs a second timer.
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, Math.ceil(tick * TICK_MS - this.clock.now()) + 1));
    this.timer = this.clock.setTimer(() => this.fire(), delay);
    this.held = true;
  }

  private hold(hold: boolean): void {
    this.held = hold;
    if (this.timer !== undefined) this.clock.holdTimer(this.timer, hold);
  }

  /** The timer: expires every slot whose tick has come, then waits for the next one. */
  private fire(): void {
    this.timer = undefined;
    this.armedTick = Infinity;
    this.held = false;
    const now = Math.floor(this.clock.now() / TICK_MS);
    const due: Timed[] = [];
    while (this.heap.length > 0 && this.heap[0]!.tick <= now) {
      const slot = this.heap[0]!;
      let t = slot.head;
      slot.head = null;
      while (t !== null) {
        const next = t.nextTimed;
        t.slot = this.expiring;
        t.prevTimed = null;
        t.nextTimed = null;
        due.push(t);
        t = next;
      }
      this.dropSlot(slot);
    }
    // Expiring one entry may remove others due with it (a connection closing settles every
    // request) or schedule new ones: the wheel is consistent before any runs.
    for (const t of due) {
      if (t.slot !== this.expiring) continue;
      t.slot = null;
      t.expire();
    }
    if (this.heap.length > 0 && this.timer === undefined) this.arm(this.heap[0]!.tick);
  }

  private up(i: number): void {
    const heap = this.heap;
    const slot = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.tick <= slot.tick) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = slot;
    slot.index = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const slot = heap[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.tick < heap[child]!.tick) child += 1;
      const c = heap[child]!;
      if (c.tick >= slot.tick) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = slot;
    slot.index = i;
  }
}
