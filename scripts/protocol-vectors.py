#!/usr/bin/env python3
"""Writes docs/protocol-vectors.json, the wire protocol's test vectors.

The bytes are produced here, from docs/protocol.md's tables, with Python's `struct`: an encoder
independent of the Rust crate, so that the Rust tests (gateway/protocol/tests/vectors.rs), which
decode every vector and encode it back, check the crate against the spec rather than against
itself. Edit the cases below, never the JSON file, then run:

    python3 scripts/protocol-vectors.py

Hex strings separate fields with spaces for readers; consumers ignore the spaces.
"""

import json
import struct
from pathlib import Path

MAGIC = b"FBRP"
MAX_FRAME_SIZE = 16 * 1024 * 1024

HELLO, WELCOME, PING, PONG, GOAWAY = 0x01, 0x02, 0x03, 0x04, 0x05
REQUEST, RESPONSE, ERROR, CANCEL = 0x10, 0x11, 0x12, 0x13
IGNORABLE, FIRE_AND_FORGET, RETRYABLE, RECONNECT = 0x80, 0x01, 0x01, 0x01


def u8(n):
    return struct.pack("<B", n)


def u16(n):
    return struct.pack("<H", n)


def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


def short(data):
    """A u16 length, then the bytes (strings are UTF-8): two fields."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return (u16(len(data)), data)


def frame(frame_type, flags, *fields):
    """A frame in TCP form: u32 length, then type, flags and fields; hex with spaces between."""
    parts = [u8(frame_type), u8(flags)]
    for field in fields:
        parts.extend(field if isinstance(field, tuple) else [field])
    length = sum(len(p) for p in parts)
    return " ".join(p.hex() for p in [u32(length), *parts] if p)


def raw(body):
    """A length prefix and arbitrary bytes, for frames `frame` cannot express."""
    return " ".join([u32(len(body)).hex(), body.hex()])


def hello(version, max_frame_size, client_name, token, flags=0, extra=b""):
    body = frame(
        HELLO, flags, MAGIC, u16(version), u32(max_frame_size), short(client_name), short(token),
        extra,
    )
    value = {
        "type": "hello",
        "version": version,
        "max_frame_size": max_frame_size,
        "client_name": client_name,
        "token": token.hex(),
    }
    return body, value


def welcome(version, max_frame_size, max_in_flight, idle_timeout_ms, server_id,
            auth_expires_in_ms=0):
    body = frame(
        WELCOME, 0, u16(version), u32(max_frame_size), u32(max_in_flight), u32(idle_timeout_ms),
        short(server_id), u32(auth_expires_in_ms),
    )
    value = {
        "type": "welcome",
        "version": version,
        "max_frame_size": max_frame_size,
        "max_in_flight": max_in_flight,
        "idle_timeout_ms": idle_timeout_ms,
        "server_id": server_id,
        "auth_expires_in_ms": auth_expires_in_ms,
    }
    return body, value


def ping(kind, data, flags=0):
    # u64 as a decimal string: JSON numbers lose precision past 2^53 in JavaScript.
    body = frame(PING if kind == "ping" else PONG, flags, u64(data))
    return body, {"type": kind, "data": str(data)}


def goaway(reason, reconnect, last_request_id, message):
    body = frame(
        GOAWAY, RECONNECT if reconnect else 0, u16(reason), u32(last_request_id), short(message)
    )
    value = {
        "type": "goaway",
        "reason": reason,
        "reconnect": reconnect,
        "last_request_id": last_request_id,
        "message": message,
    }
    return body, value


def request(request_id, method_id, timeout_ms, fire_and_forget, payload, flags=None):
    if flags is None:
        flags = FIRE_AND_FORGET if fire_and_forget else 0
    body = frame(REQUEST, flags, u32(request_id), u32(method_id), u32(timeout_ms), payload)
    value = {
        "type": "request",
        "request_id": request_id,
        "method_id": method_id,
        "timeout_ms": timeout_ms,
        "fire_and_forget": fire_and_forget,
        "payload": payload.hex(),
    }
    return body, value


def response(request_id, payload):
    body = frame(RESPONSE, 0, u32(request_id), payload)
    return body, {"type": "response", "request_id": request_id, "payload": payload.hex()}


def error(request_id, code, retryable, error_id, message, details, wire_code=None):
    body = frame(
        ERROR, RETRYABLE if retryable else 0, u32(request_id),
        u8(code if wire_code is None else wire_code), u32(error_id), short(message), details,
    )
    value = {
        "type": "error",
        "request_id": request_id,
        "code": code,
        "retryable": retryable,
        "error_id": error_id,
        "message": message,
        "details": details.hex(),
    }
    return body, value


def cancel(request_id, flags=0):
    return frame(CANCEL, flags, u32(request_id)), {"type": "cancel", "request_id": request_id}


# A FlatBuffers payload: `table T { a: uint; }` with a = 42 (flatc reads it as {"a": 42}).
PAYLOAD = bytes.fromhex("0c000000 0600 0800 0400 0000 08000000 2a000000".replace(" ", ""))


def frames():
    """(name, (hex, frame), encodes_to or None)"""
    canonical = [
        ("hello, version 1, default limit, named, no token",
         hello(1, MAX_FRAME_SIZE, "device-tracker/1.4", b"")),
        ("hello, unnamed, with a token", hello(1, 65536, "", b"eyJhbGciOi.x.y")),
        ("welcome", welcome(1, MAX_FRAME_SIZE, 256, 30000, "gw-eu-1", 3600000)),
        ("welcome, no idle timeout, empty server id", welcome(1, 65536, 1, 0, "")),
        ("ping", ping("ping", 0x0102030405060708)),
        ("pong, largest data", ping("pong", 2**64 - 1)),
        ("request with a payload and a timeout", request(1, 0x9E3779B9, 5000, False, PAYLOAD)),
        ("request, fire and forget, no timeout, empty payload", request(2, 7, 0, True, b"")),
        ("request, largest ids and timeout",
         request(2**32 - 1, 2**32 - 1, 2**32 - 1, False, b"\x00")),
        ("response with a payload", response(1, PAYLOAD)),
        ("response, empty payload", response(2**32 - 1, b"")),
        ("error, not retryable, no details",
         error(3, 5, False, 0, "no device `7`", b"")),
        ("error, retryable resource_exhausted",
         error(4, 8, True, 0, "too many requests in flight", b"")),
        ("error, application error with details",
         error(5, 9, False, 0xDEADBEEF, "überweisung abgelehnt ✗", PAYLOAD)),
        ("error, unauthenticated, empty message", error(6, 16, False, 0, "", b"")),
        ("cancel", cancel(0x01020304)),
        ("goaway, shutting down, reconnect", goaway(1, True, 41, "draining")),
        ("goaway, policy, don't reconnect", goaway(11, False, 0, "client banned")),
        ("goaway, unknown reason keeps its number and flag", goaway(300, True, 9, "")),
    ]
    for name, (hex_, value) in canonical:
        yield name, hex_, value, None

    # Decoding these gives the frame; encoding the frame gives the canonical form.
    lenient = [
        ("error, code unknown to version 1 decodes as unknown (2)",
         error(7, 2, False, 0, "from the future", b"", wire_code=99),
         error(7, 2, False, 0, "from the future", b"")),
        ("error, code ok (0) decodes as unknown (2)",
         error(8, 2, False, 0, "", b"", wire_code=0), error(8, 2, False, 0, "", b"")),
        ("undefined flag bits on a known frame are ignored",
         request(9, 1, 0, True, b"", flags=0x7F), request(9, 1, 0, True, b"")),
        ("ignorable flag on a known frame: the frame is processed",
         cancel(10, flags=IGNORABLE), cancel(10)),
        ("hello with fields appended by a later version: extra bytes ignored",
         hello(2, MAX_FRAME_SIZE, "next", b"", extra=b"\x01\x02\x03"),
         hello(2, MAX_FRAME_SIZE, "next", b"")),
    ]
    for name, (hex_, value), (canonical_hex, _) in lenient:
        yield name, hex_, value, canonical_hex


def ignored():
    return [
        ("unassigned pub/sub type 0x2f, ignorable, empty", frame(0x2F, IGNORABLE), 0x2F),
        ("unassigned auth type 0x3e, ignorable, with content",
         frame(0x3E, IGNORABLE, b"\xaa\xbb\xcc"), 0x3E),
        ("unassigned type 0xff, ignorable and other flags", frame(0xFF, 0xFF, u32(1)), 0xFF),
    ]


def invalid():
    return [
        ("zero-length frame", u32(0).hex(), "empty_frame"),
        ("frame of one byte: no flags", raw(u8(REQUEST)), "truncated"),
        ("request ends inside method_id", frame(REQUEST, 0, u32(1), u16(7)), "truncated"),
        ("cancel without its request id", frame(CANCEL, 0), "truncated"),
        ("ping with 7 bytes of data", frame(PING, 0, b"\x00" * 7), "truncated"),
        ("hello whose token length runs past the end",
         frame(HELLO, 0, MAGIC, u16(1), u32(MAX_FRAME_SIZE), short(""), u16(10), b"abc"),
         "truncated"),
        ("error whose message length runs past the end",
         frame(ERROR, 0, u32(1), u8(13), u32(0), u16(5), b"oops"), "truncated"),
        ("goaway without its message length", frame(GOAWAY, 0, u16(4), u32(0)), "truncated"),
        ("unknown type 0x42 without the ignorable flag", frame(0x42, 0), "unknown_frame_type"),
        ("unassigned pub/sub type 0x2a without the ignorable flag",
         frame(0x2A, 0, u32(1)), "unknown_frame_type"),
        ("type 0x00 is never assigned", frame(0x00, 0), "unknown_frame_type"),
        ("frame one byte over the 16 MiB limit: refused from the length prefix alone",
         u32(MAX_FRAME_SIZE + 1).hex(), "frame_too_large"),
        ("length prefix of 4 GiB - 1", u32(2**32 - 1).hex(), "frame_too_large"),
        ("hello with another protocol's magic", frame(HELLO, 0, b"GET ", u16(1)), "bad_magic"),
        ("error message is not UTF-8",
         frame(ERROR, 0, u32(1), u8(13), u32(0), short(b"\xff\xfe"), b""), "bad_utf8"),
        ("goaway message with an overlong encoding",
         frame(GOAWAY, 0, u16(4), u32(0), short(b"\xc0\x80")), "bad_utf8"),
        ("hello client name with a surrogate",
         frame(HELLO, 0, MAGIC, u16(1), u32(MAX_FRAME_SIZE), short(b"\xed\xa0\x80"), short(b"")),
         "bad_utf8"),
        ("welcome server id cut inside a character",
         frame(WELCOME, 0, u16(1), u32(MAX_FRAME_SIZE), u32(1), u32(0), short("é".encode()[:1])),
         "bad_utf8"),
        ("cancel with a trailing byte", frame(CANCEL, 0, u32(1), b"\x00"), "trailing_bytes"),
        ("pong with 9 bytes of data", frame(PONG, 0, u64(1), b"\x00"), "trailing_bytes"),
        ("goaway with bytes after its message",
         frame(GOAWAY, 1, u16(1), u32(0), short("x"), b"\x00"), "trailing_bytes"),
    ]


def main():
    doc = {
        "about": "Test vectors of the client-gateway wire protocol. Their schema is in "
        "docs/protocol.md, section 'Test vectors'. Generated by scripts/protocol-vectors.py: "
        "edit that, not this file.",
        "version": 1,
        "max_frame_size": MAX_FRAME_SIZE,
        "frames": [
            {"name": name, "hex": hex_, "frame": value, **({"encodes_to": enc} if enc else {})}
            for name, hex_, value, enc in frames()
        ],
        "ignored": [{"name": n, "hex": h, "frame_type": t} for n, h, t in ignored()],
        "invalid": [{"name": n, "hex": h, "error": e} for n, h, e in invalid()],
    }
    out = Path(__file__).resolve().parent.parent / "docs" / "protocol-vectors.json"
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
