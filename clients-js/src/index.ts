export * from "./protocol/index.js";
export * from "./status.js";
