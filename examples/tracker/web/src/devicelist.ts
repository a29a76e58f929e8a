// The device list: one item per device (`#devices li[data-device-id]`) with its colour, name, id,
// speed and when it was last seen (relative, updated every second); a device silent for a minute
// is greyed (class `stale`). Clicking an item selects the device.

import { type Device, STALE_MS } from "./fleet.js";
import { ago, clock, speed } from "./format.js";

export class DeviceList {
  readonly #items = new Map<string, HTMLLIElement>();

  constructor(
    private readonly list: HTMLElement,
    private readonly onSelect: (key: string) => void,
  ) {}

  /** Lists `devices`, replacing what was listed. */
  render(devices: readonly Device[], nowMs: number): void {
    this.list.replaceChildren();
    this.#items.clear();
    if (devices.length === 0) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = "No devices are visible to you.";
      this.list.append(empty);
      return;
    }
    for (const device of devices) {
      const item = document.createElement("li");
      item.dataset.deviceId = device.key;
      item.tabIndex = 0;
      item.style.setProperty("--c", device.color);
      item.innerHTML =
        '<span class="swatch"></span><span class="name"></span><span class="speed"></span>' +
        '<span class="meta"><span class="id"></span><span class="last-seen"></span></span>';
      (item.querySelector(".name") as HTMLElement).textContent = device.name;
      (item.querySelector(".id") as HTMLElement).textContent = `#${device.key}`;
      item.addEventListener("click", () => this.onSelect(device.key));
      item.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          this.onSelect(device.key);
        }
      });
      this.#items.set(device.key, item);
      this.list.append(item);
      this.update(device, nowMs);
    }
  }

  /** Shows `device`'s newest state. */
  update(device: Device, nowMs: number): void {
    const item = this.#items.get(device.key);
    if (!item) return;
    const stale = device.isStale(nowMs);
    item.classList.toggle("stale", stale);
    item.dataset.stale = String(stale);
    const speedText = device.last && !stale ? speed(device.last.speedMps) : "–";
    (item.querySelector(".speed") as HTMLElement).textContent = speedText;
    const seen = item.querySelector(".last-seen") as HTMLElement;
    seen.textContent = device.lastSeenMs > 0 ? `seen ${ago(device.lastSeenMs, nowMs)}` : "never seen";
    seen.dataset.ms = String(device.lastSeenMs);
    seen.title = device.lastSeenMs > 0 ? clock(device.lastSeenMs, nowMs) : "";
    item.title = stale ? `no report for over ${STALE_MS / 1000} s` : "";
  }

  /** Marks the selected device's item. */
  select(key: string | undefined): void {
    for (const [k, item] of this.#items) {
      const selected = k === key;
      item.classList.toggle("selected", selected);
      item.setAttribute("aria-selected", String(selected));
      if (selected) item.scrollIntoView({ block: "nearest" });
    }
  }
}
