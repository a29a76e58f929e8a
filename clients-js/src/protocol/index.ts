/**
 * The wire protocol of `docs/protocol.md`: frames as values, their encoder and decoder, in both
 * the byte-stream form (TCP: a `u32` length prefix per frame) and the message form (WebSocket:
 * one frame per binary message).
 *
 * @module
 */

export * from "./frame.js";
export { encodeFrame, encodeMessage, FrameEncodeError } from "./encode.js";
export { decodeMessage, FrameDecodeError, FrameReader, frameTypeName, type DecodeErrorKind } from "./decode.js";
