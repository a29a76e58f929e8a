// The device list: one row per device (`#devices li[data-device-id]`) with its colour, name, id,
// speed and when it was last seen (relative, updated every second); a device silent for a minute
// is greyed (class `stale`). Clicking a row selects the device.
//
// Virtualised: rows have one height, and only those in view (and a few around them) exist in the
// page, so ten thousand devices scroll as smoothly as ten. `#device-search` narrows the list to
// the devices whose name or id contains its text (any letter case).

import { type Device, STALE_MS } from "./fleet.js";
import { ago, clock, speed } from "./format.js";

/** Each row's height in pixels (app.css gives `#devices li` the same). */
export const ROW_PX = 52;
/** Rows made beyond the visible ones, above and below. */
const OVERSCAN = 10;

export class DeviceList {
  /** Every device, in the order listed. */
  #all: readonly Device[] = [];
  /** Those matching the search. */
  #shown: readonly Device[] = [];
  #query = "";
  #selected: string | undefined;
  /** The rows in the page, by device key. */
  readonly #rows = new Map<string, HTMLLIElement>();
  #frame = 0;

  /**
   * @param scroller the scrolling box around `list`.
   * @param search the search field.
   * @param count where "N devices" (or "M of N") is written.
   */
  constructor(
    private readonly scroller: HTMLElement,
    private readonly list: HTMLElement,
    private readonly search: HTMLInputElement,
    private readonly count: HTMLElement,
    private readonly onSelect: (key: string) => void,
  ) {
    scroller.addEventListener("scroll", this.#onScroll);
    search.addEventListener("input", this.#onSearch);
    window.addEventListener("resize", this.#onScroll);
  }

  /** Lists `devices`, replacing what was listed. */
  render(devices: readonly Device[], nowMs: number): void {
    this.#all = devices;
    this.#filter();
    this.#layout(nowMs, true);
  }

  /** Shows `device`'s newest state, if its row is in the page. */
  update(device: Device, nowMs: number): void {
    const row = this.#rows.get(device.key);
    if (row) fill(row, device, nowMs);
  }

  /** Updates every row in the page (the "seen … ago" texts). */
  refresh(nowMs: number): void {
    for (const device of this.#visible()) this.update(device, nowMs);
  }

  /** The keys of the devices whose rows are in the page. */
  shownKeys(): string[] {
    return [...this.#rows.keys()];
  }

  /** Marks the selected device's row and scrolls it into view. */
  select(key: string | undefined): void {
    this.#selected = key;
    const index = key === undefined ? -1 : this.#shown.findIndex((d) => d.key === key);
    if (index >= 0) {
      const top = index * ROW_PX;
      if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
      else if (top + ROW_PX > this.scroller.scrollTop + this.scroller.clientHeight) {
        this.scroller.scrollTop = top + ROW_PX - this.scroller.clientHeight;
      }
    }
    this.#layout(Date.now(), false);
  }

  dispose(): void {
    this.scroller.removeEventListener("scroll", this.#onScroll);
    this.search.removeEventListener("input", this.#onSearch);
    window.removeEventListener("resize", this.#onScroll);
    cancelAnimationFrame(this.#frame);
    this.search.value = "";
    this.list.replaceChildren();
    this.list.style.height = "";
    this.count.textContent = "";
    this.#rows.clear();
  }

  readonly #onScroll = (): void => {
    cancelAnimationFrame(this.#frame);
    this.#frame = requestAnimationFrame(() => this.#layout(Date.now(), false));
  };

  readonly #onSearch = (): void => {
    this.#query = this.search.value.trim().toLowerCase();
    this.#filter();
    this.scroller.scrollTop = 0;
    this.#layout(Date.now(), true);
  };

  #filter(): void {
    const q = this.#query;
    this.#shown = q === "" ? this.#all : this.#all.filter((d) => d.name.toLowerCase().includes(q) || d.key.includes(q));
    const total = this.#all.length;
    this.count.textContent = q === "" ? `(${total})` : `(${this.#shown.length} of ${total})`;
  }

  /** The indices of the rows that should be in the page. */
  #window(): [number, number] {
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_PX) - OVERSCAN);
    const inView = Math.ceil((this.scroller.clientHeight || 800) / ROW_PX);
    return [first, Math.min(this.#shown.length, first + inView + 2 * OVERSCAN)];
  }

  #visible(): readonly Device[] {
    const [from, to] = this.#window();
    return this.#shown.slice(from, to);
  }

  /** Makes the rows of the window (reusing those already there) and removes the others. */
  #layout(nowMs: number, refill: boolean): void {
    this.list.style.height = `${this.#shown.length * ROW_PX}px`;
    if (this.#shown.length === 0) {
      this.#rows.clear();
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = this.#all.length === 0 ? "No devices are visible to you." : "No device matches.";
      this.list.replaceChildren(empty);
      this.list.style.height = "";
      return;
    }
    const [from, to] = this.#window();
    const wanted = new Set<string>();
    const ordered: HTMLLIElement[] = [];
    for (let i = from; i < to; i += 1) {
      const device = this.#shown[i] as Device;
      wanted.add(device.key);
      let row = this.#rows.get(device.key);
      const fresh = !row;
      if (!row) {
        row = makeRow(device, this.onSelect);
        this.#rows.set(device.key, row);
      }
      ordered.push(row);
      row.style.top = `${i * ROW_PX}px`;
      const selected = device.key === this.#selected;
      row.classList.toggle("selected", selected);
      row.setAttribute("aria-selected", String(selected));
      if (fresh || refill) fill(row, device, nowMs);
    }
    for (const key of this.#rows.keys()) {
      if (!wanted.has(key)) this.#rows.delete(key);
    }
    // In list order in the page too (for keyboard order and `:first-child`); only when it changed.
    const children = this.list.children;
    if (children.length !== ordered.length || ordered.some((row, i) => children[i] !== row)) {
      this.list.replaceChildren(...ordered);
    }
  }
}

function makeRow(device: Device, onSelect: (key: string) => void): HTMLLIElement {
  const row = document.createElement("li");
  row.dataset.deviceId = device.key;
  row.tabIndex = 0;
  row.style.setProperty("--c", device.color);
  row.innerHTML =
    '<span class="swatch"></span><span class="name"></span><span class="speed"></span>' +
    '<span class="meta"><span class="id"></span><span class="last-seen"></span></span>';
  (row.querySelector(".name") as HTMLElement).textContent = device.name;
  (row.querySelector(".id") as HTMLElement).textContent = `#${device.key}`;
  row.addEventListener("click", () => onSelect(device.key));
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      onSelect(device.key);
    }
  });
  return row;
}

/** Writes `device`'s state into its row. */
function fill(row: HTMLLIElement, device: Device, nowMs: number): void {
  const stale = device.isStale(nowMs);
  row.classList.toggle("stale", stale);
  row.dataset.stale = String(stale);
  const speedText = device.last && !stale ? speed(device.last.speedMps) : "–";
  (row.querySelector(".speed") as HTMLElement).textContent = speedText;
  const seen = row.querySelector(".last-seen") as HTMLElement;
  seen.textContent = device.lastSeenMs > 0 ? `seen ${ago(device.lastSeenMs, nowMs)}` : "never seen";
  seen.dataset.ms = String(device.lastSeenMs);
  seen.title = device.lastSeenMs > 0 ? clock(device.lastSeenMs, nowMs) : "";
  row.title = stale ? `no report for over ${STALE_MS / 1000} s` : "";
}
