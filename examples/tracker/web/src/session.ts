// The signed-in user's token: from `login` (name and password), the address's `#token=` (then
// removed from the address bar) or the token form; kept in sessionStorage until "log out" (and
// replaced as it is refreshed), and read for the claims the page shows. The page does not verify the signature: the gateway does, and a refused token
// sends the page back to the login screen with the gateway's reason.

const STORAGE_KEY = "tracker.token";

/** What the page reads from a token's payload. */
export interface Claims {
  /** The user's name. */
  readonly sub: string;
  /** Expiry, in seconds since the Unix epoch. */
  readonly exp: number;
  /** The user's roles (`admin`, `viewer`). */
  readonly roles: readonly string[];
}

/** A token the page cannot use, with the reason to show. */
export class TokenError extends Error {}

function base64UrlDecode(part: string): string {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

/**
 * Reads a JWT's claims, checking what the page can check by itself: the form, `sub`, and `exp`
 * (against `nowMs`).
 *
 * @throws TokenError naming what is wrong.
 */
export function readClaims(token: string, nowMs = Date.now()): Claims {
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || !parts[1]) {
    throw new TokenError("this is not a token: a token is three base64url parts separated by dots");
  }
  let payload: unknown;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    throw new TokenError("this is not a token: its middle part is not base64url-encoded JSON");
  }
  if (typeof payload !== "object" || payload === null) {
    throw new TokenError("this is not a token: its claims are not a JSON object");
  }
  const { sub, exp, roles } = payload as Record<string, unknown>;
  if (typeof sub !== "string" || sub === "") throw new TokenError("the token names no user (no `sub` claim)");
  if (typeof exp !== "number" || !Number.isFinite(exp)) throw new TokenError("the token has no expiry (no `exp` claim)");
  if (exp * 1000 <= nowMs) {
    throw new TokenError(`the token expired at ${new Date(exp * 1000).toLocaleString()}: ask for a new one`);
  }
  const roleList = Array.isArray(roles) ? roles.filter((r): r is string => typeof r === "string") : typeof roles === "string" ? [roles] : [];
  return { sub, exp, roles: roleList };
}

/**
 * Takes a token from the address's fragment (`#token=…`), removing it from the address bar
 * (and so from the history) so it is not bookmarked or shared by accident.
 */
export function takeTokenFromAddress(): string | undefined {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("token");
  if (token === null) return undefined;
  fragment.delete("token");
  const rest = fragment.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
  return token.trim();
}

export const tokenStore = {
  get(): string | undefined {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  },
  set(token: string): void {
    sessionStorage.setItem(STORAGE_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};
