// How the page writes times, durations, distances and speeds.

/** "just now", "12 s ago", "4 min ago", "3 h ago", "2 d ago"; "never" for 0. */
export function ago(thenMs: number, nowMs: number): string {
  if (thenMs <= 0) return "never";
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 3) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** "45 s", "12 min", "1 h 05 min". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${String(min % 60).padStart(2, "0")} min`;
}

/** "850 m", "12.3 km". */
export function distance(m: number): string {
  if (m < 1000) return `${Math.round(m)} m`;
  return `${(m / 1000).toFixed(m < 100_000 ? 1 : 0)} km`;
}

/** Speed in km/h, from m/s: "37 km/h". */
export function speed(mps: number): string {
  return `${Math.round(mps * 3.6)} km/h`;
}

/** A time of day, "14:05:09"; with the date when it is not today. */
export function clock(ms: number, nowMs = Date.now()): string {
  const date = new Date(ms);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  if (new Date(nowMs).toDateString() === date.toDateString()) return time;
  return `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}
