// What the end-to-end tests share about running `tracker demo`: where the binary, the built
// dashboard and the screenshots are, free loopback ports for its listeners, and stopping it.

import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "../../..");
/** The tracker binary (`cargo build -p tracker`), or `$TRACKER_BIN`. */
export const TRACKER_BIN = process.env.TRACKER_BIN ?? join(ROOT, "target/debug/tracker");
/** The built dashboard (`node examples/tracker/web/build.mjs`). */
export const WEB = join(ROOT, "examples/tracker/web/dist");
/** Where the tests save their screenshots. */
export const ARTIFACTS = join(HERE, "artifacts");

/** A TCP port nothing listens on now (the kernel's choice). */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A UDP port nothing is bound to now. */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** Stops a demo gracefully (SIGTERM), or with SIGKILL after `ms`; resolves once it exited. */
export function stopDemo(child, ms = 15_000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  child.kill("SIGTERM");
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve();
    }, ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
