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
SUBSCRIBE, UNSUBSCRIBE, PUBLISH, SUBSCRIBED, EVENT, MISSED, SUBSCRIPTION_ENDED = range(0x20, 0x27)
SUBSCRIBE_FROM, SUBSCRIBED_AT, EVENT_AT = 0x27, 0x28, 0x29
CAPABILITY_HISTORY = 0x01
AUTH, AUTH_OK = 0x30, 0x31
IGNORABLE, FIRE_AND_FORGET, RETRYABLE, RECONNECT, ALL_KEYS = 0x80, 0x01, 0x01, 0x01, 0x01


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


def capabilities_field(capabilities):
    """HELLO's and WELCOME's last field: left out when there is no capability to announce."""
    return u32(capabilities) if capabilities else b""


def hello(version, max_frame_size, client_name, token, flags=0, extra=b"", capabilities=0):
    body = frame(
        HELLO, flags, MAGIC, u16(version), u32(max_frame_size), short(client_name), short(token),
        capabilities_field(capabilities), extra,
    )
    value = {
        "type": "hello",
        "version": version,
        "max_frame_size": max_frame_size,
        "client_name": client_name,
        "token": token.hex(),
        "capabilities": capabilities,
    }
    return body, value


def welcome(version, max_frame_size, max_in_flight, idle_timeout_ms, server_id,
            auth_expires_in_ms=0, capabilities=0, extra=b""):
    body = frame(
        WELCOME, 0, u16(version), u32(max_frame_size), u32(max_in_flight), u32(idle_timeout_ms),
        short(server_id), u32(auth_expires_in_ms), capabilities_field(capabilities), extra,
    )
    value = {
        "type": "welcome",
        "version": version,
        "max_frame_size": max_frame_size,
        "max_in_flight": max_in_flight,
        "idle_timeout_ms": idle_timeout_ms,
        "server_id": server_id,
        "auth_expires_in_ms": auth_expires_in_ms,
        "capabilities": capabilities,
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


def subscribe(subscription_id, topic_id, all_keys, key, flags=None):
    if flags is None:
        flags = ALL_KEYS if all_keys else 0
    body = frame(SUBSCRIBE, flags, u32(subscription_id), u32(topic_id), short(key))
    value = {
        "type": "subscribe",
        "subscription_id": subscription_id,
        "topic_id": topic_id,
        "all_keys": all_keys,
        "key": key,
    }
    return body, value


def unsubscribe(subscription_id, flags=0):
    body = frame(UNSUBSCRIBE, flags, u32(subscription_id))
    return body, {"type": "unsubscribe", "subscription_id": subscription_id}


def publish(request_id, topic_id, key, payload, flags=0):
    body = frame(PUBLISH, flags, u32(request_id), u32(topic_id), short(key), payload)
    value = {
        "type": "publish",
        "request_id": request_id,
        "topic_id": topic_id,
        "key": key,
        "payload": payload.hex(),
    }
    return body, value


def subscribed(subscription_id, flags=0):
    body = frame(SUBSCRIBED, flags, u32(subscription_id))
    return body, {"type": "subscribed", "subscription_id": subscription_id}


def event(subscription_id, key, payload, flags=0):
    body = frame(EVENT, flags, u32(subscription_id), short(key), payload)
    value = {
        "type": "event",
        "subscription_id": subscription_id,
        "key": key,
        "payload": payload.hex(),
    }
    return body, value


def subscribe_from(subscription_id, topic_id, all_keys, key, epoch, offset, flags=None):
    if flags is None:
        flags = ALL_KEYS if all_keys else 0
    body = frame(SUBSCRIBE_FROM, flags, u32(subscription_id), u32(topic_id), u64(epoch),
                 u64(offset), short(key))
    value = {
        "type": "subscribe_from",
        "subscription_id": subscription_id,
        "topic_id": topic_id,
        "all_keys": all_keys,
        "key": key,
        "epoch": str(epoch),
        "offset": str(offset),
    }
    return body, value


def subscribed_at(subscription_id, recovery, epoch, offset, flags=0):
    body = frame(SUBSCRIBED_AT, flags, u32(subscription_id), u8(recovery), u64(epoch), u64(offset))
    value = {
        "type": "subscribed_at",
        "subscription_id": subscription_id,
        "recovery": recovery,
        "epoch": str(epoch),
        "offset": str(offset),
    }
    return body, value


def event_at(subscription_id, offset, key, payload, flags=0):
    body = frame(EVENT_AT, flags, u32(subscription_id), u64(offset), short(key), payload)
    value = {
        "type": "event_at",
        "subscription_id": subscription_id,
        "offset": str(offset),
        "key": key,
        "payload": payload.hex(),
    }
    return body, value


def missed(subscription_id, count, flags=0):
    body = frame(MISSED, flags, u32(subscription_id), u32(count))
    return body, {"type": "missed", "subscription_id": subscription_id, "count": count}


def subscription_ended(subscription_id, code, retryable, message, wire_code=None, flags=None):
    if flags is None:
        flags = RETRYABLE if retryable else 0
    body = frame(
        SUBSCRIPTION_ENDED, flags, u32(subscription_id),
        u8(code if wire_code is None else wire_code), short(message),
    )
    value = {
        "type": "subscription_ended",
        "subscription_id": subscription_id,
        "code": code,
        "retryable": retryable,
        "message": message,
    }
    return body, value


def auth(request_id, token, flags=0):
    body = frame(AUTH, flags, u32(request_id), short(token))
    return body, {"type": "auth", "request_id": request_id, "token": token.hex()}


def auth_ok(request_id, expires_in_ms, flags=0):
    body = frame(AUTH_OK, flags, u32(request_id), u32(expires_in_ms))
    value = {"type": "auth_ok", "request_id": request_id, "expires_in_ms": expires_in_ms}
    return body, value


# A JWT in compact serialization (header {"alg":"HS256","typ":"JWT"}; the signature is made up):
# the protocol carries it as bytes without looking inside.
JWT = (b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJkZXYtNyIsImV4cCI6MTc2NzIyNTYwMH0"
       b".c2lnbmF0dXJl")

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
        ("goaway, a client that is done", goaway(12, False, 0, "")),
        ("goaway, unknown reason keeps its number and flag", goaway(300, True, 9, "")),
        ("welcome, credentials that never expire", welcome(1, MAX_FRAME_SIZE, 64, 0, "gw", 0)),
        ("welcome, credentials expiring at the largest time",
         welcome(1, MAX_FRAME_SIZE, 64, 0, "gw", 2**32 - 1)),
        ("subscribe to one key", subscribe(1, 0x5E1F00D5, False, "dev-7")),
        ("subscribe to all keys", subscribe(2, 0x5E1F00D5, True, "")),
        ("subscribe to an unkeyed topic", subscribe(3, 0x0000002A, False, "")),
        ("subscribe, integer key, largest ids", subscribe(2**32 - 1, 2**32 - 1, False, "4096")),
        ("subscribe, non-ASCII key", subscribe(4, 9, False, "köln/straße→7 ✓")),
        ("unsubscribe", unsubscribe(0x01020304)),
        ("publish, no answer wanted, keyed", publish(0, 0x5E1F00D5, "dev-7", PAYLOAD)),
        ("publish with a request id, unkeyed, empty payload", publish(11, 0x2A, "", b"")),
        ("publish, non-ASCII key, largest ids", publish(2**32 - 1, 2**32 - 1, "é", b"\x00")),
        ("subscribed", subscribed(1)),
        ("subscribed, largest id", subscribed(2**32 - 1)),
        ("event with a key and a payload", event(1, "dev-7", PAYLOAD)),
        ("event, unkeyed, empty payload", event(3, "", b"")),
        ("event, non-ASCII key", event(4, "köln/straße→7 ✓", b"\x01\x02")),
        ("missed", missed(2, 17)),
        ("missed, largest count", missed(1, 2**32 - 1)),
        ("subscription ended: permission denied, not retryable",
         subscription_ended(1, 7, False, "not allowed to subscribe to Tracker.position")),
        ("subscription ended: too many subscriptions, retryable",
         subscription_ended(5, 8, True, "")),
        ("subscription ended: unknown topic, non-ASCII message",
         subscription_ended(6, 5, False, "unbekanntes Thema `0x2a` ✗")),
        ("auth with a token", auth(12, JWT)),
        ("auth, empty token", auth(13, b"")),
        ("auth ok", auth_ok(12, 3600000)),
        ("auth ok, credentials that never expire", auth_ok(2**32 - 1, 0)),
        ("hello announcing history",
         hello(1, MAX_FRAME_SIZE, "tracker-dashboard/2", b"", capabilities=CAPABILITY_HISTORY)),
        ("hello, capability bits this revision does not define are kept",
         hello(1, 65536, "", b"t", capabilities=2**32 - 1)),
        ("welcome announcing history",
         welcome(1, MAX_FRAME_SIZE, 256, 30000, "gw-eu-1", 0, capabilities=CAPABILITY_HISTORY)),
        ("subscribe from a position, one key",
         subscribe_from(7, 0x5E1F00D5, False, "dev-7", 0x1122334455667788, 41)),
        ("subscribe from a position, all keys, largest position",
         subscribe_from(8, 0x5E1F00D5, True, "", 2**64 - 1, 2**64 - 1)),
        ("subscribe from the start of a history, unkeyed", subscribe_from(9, 0x2A, False, "", 3, 0)),
        ("subscribed at the head, nothing asked", subscribed_at(1, 0, 0x1122334455667788, 40)),
        ("subscribed at the asked position, recovered",
         subscribed_at(7, 1, 0x1122334455667788, 41)),
        ("subscribed, epoch changed", subscribed_at(7, 2, 0x0A0B0C0D0E0F1011, 0)),
        ("subscribed, too old", subscribed_at(8, 3, 0x1122334455667788, 1000)),
        ("subscribed, too many", subscribed_at(8, 4, 0x1122334455667788, 1000)),
        ("subscribed, ahead", subscribed_at(8, 5, 0x1122334455667788, 1000)),
        ("subscribed, history unavailable", subscribed_at(8, 6, 0x1122334455667788, 1000)),
        ("subscribed, a recovery value this revision does not name keeps its number",
         subscribed_at(2**32 - 1, 200, 1, 1)),
        ("event at an offset, keyed", event_at(7, 42, "dev-7", PAYLOAD)),
        ("event at the largest offset, unkeyed, empty payload", event_at(9, 2**64 - 1, "", b"")),
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
        ("welcome with fields appended by a later version: extra bytes ignored",
         (frame(WELCOME, 0, u16(1), u32(MAX_FRAME_SIZE), u32(8), u32(0), short("gw"),
                u32(60000), b"\x01\x02\x03"),
          welcome(1, MAX_FRAME_SIZE, 8, 0, "gw", 60000)[1]),
         welcome(1, MAX_FRAME_SIZE, 8, 0, "gw", 60000)),
        ("hello with capabilities, then fields appended by a later revision: ignored",
         hello(1, MAX_FRAME_SIZE, "next", b"", capabilities=1, extra=b"\xaa\xbb"),
         hello(1, MAX_FRAME_SIZE, "next", b"", capabilities=1)),
        ("welcome with capabilities, then fields appended by a later revision: ignored",
         welcome(1, MAX_FRAME_SIZE, 8, 0, "gw", 0, capabilities=1, extra=b"\x01"),
         welcome(1, MAX_FRAME_SIZE, 8, 0, "gw", 0, capabilities=1)),
        ("subscribe from, undefined flag bits besides all_keys are ignored",
         subscribe_from(5, 9, False, "k", 1, 2, flags=0x7E), subscribe_from(5, 9, False, "k", 1, 2)),
        ("subscribed at, undefined flag bits are ignored",
         subscribed_at(5, 1, 1, 2, flags=0x7F), subscribed_at(5, 1, 1, 2)),
        ("event at, undefined flag bits are ignored",
         event_at(5, 3, "k", b"\xaa", flags=0x7F), event_at(5, 3, "k", b"\xaa")),
        ("subscription ended, code ok (0) decodes as unknown (2)",
         subscription_ended(7, 2, False, "", wire_code=0), subscription_ended(7, 2, False, "")),
        ("subscription ended, code unknown to version 1 decodes as unknown (2)",
         subscription_ended(8, 2, True, "later", wire_code=200),
         subscription_ended(8, 2, True, "later")),
        ("subscription ended, undefined flag bits are ignored",
         subscription_ended(9, 14, True, "", flags=0x7F), subscription_ended(9, 14, True, "")),
        ("subscribe, undefined flag bits on a one-key subscription are ignored",
         subscribe(5, 9, False, "k", flags=0x7E), subscribe(5, 9, False, "k")),
        ("subscribe, undefined flag bits besides all_keys are ignored",
         subscribe(6, 9, True, "", flags=0x7F), subscribe(6, 9, True, "")),
        ("publish, undefined flag bits are ignored",
         publish(14, 9, "k", b"\xaa", flags=0x7F), publish(14, 9, "k", b"\xaa")),
        ("event, undefined flag bits are ignored",
         event(1, "k", b"\xaa", flags=0x7F), event(1, "k", b"\xaa")),
        ("missed, ignorable and undefined flag bits are ignored",
         missed(1, 3, flags=0xFF), missed(1, 3)),
        ("auth, undefined flag bits are ignored", auth(15, b"t", flags=0x01), auth(15, b"t")),
        ("auth ok, undefined flag bits are ignored",
         auth_ok(15, 1, flags=0x01), auth_ok(15, 1)),
        ("unsubscribe, undefined flag bits are ignored",
         unsubscribe(1, flags=0x01), unsubscribe(1)),
        ("subscribed, ignorable flag on a known frame: the frame is processed",
         subscribed(1, flags=IGNORABLE), subscribed(1)),
    ]
    for name, (hex_, value), (canonical_hex, _) in lenient:
        yield name, hex_, value, canonical_hex


def ignored():
    return [
        ("unassigned pub/sub type 0x2f, ignorable, empty", frame(0x2F, IGNORABLE), 0x2F),
        ("unassigned pub/sub type 0x2a, just after EVENT_AT, ignorable",
         frame(0x2A, IGNORABLE, u32(1)), 0x2A),
        ("unassigned auth type 0x3e, ignorable, with content",
         frame(0x3E, IGNORABLE, b"\xaa\xbb\xcc"), 0x3E),
        ("unassigned auth type 0x32, just after AUTH_OK, ignorable",
         frame(0x32, IGNORABLE | 0x01, u32(1), u32(2)), 0x32),
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
        ("unassigned pub/sub type 0x2a without the ignorable flag",
         frame(0x2A, 0, u32(1)), "unknown_frame_type"),
        ("unassigned auth type 0x32 without the ignorable flag",
         frame(0x32, 0, u32(1), u32(2)), "unknown_frame_type"),
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
        *pubsub_invalid(),
        *auth_invalid(),
    ]


def pubsub_invalid():
    """Every field of the pub/sub frames cut short, bad UTF-8 keys and messages, and bytes after
    the frames of exact size."""
    sub_id, topic = u32(1), u32(9)
    return [
        ("subscribe without its flags", raw(u8(SUBSCRIBE)), "truncated"),
        ("subscribe ends inside subscription_id", frame(SUBSCRIBE, 0, u16(1)), "truncated"),
        ("subscribe ends inside topic_id", frame(SUBSCRIBE, 0, sub_id, u16(9)), "truncated"),
        ("subscribe without its key length", frame(SUBSCRIBE, 0, sub_id, topic), "truncated"),
        ("subscribe ends inside its key length",
         frame(SUBSCRIBE, 0, sub_id, topic, b"\x05"), "truncated"),
        ("subscribe whose key length runs past the end",
         frame(SUBSCRIBE, 0, sub_id, topic, u16(5), b"dev-"), "truncated"),
        ("subscribe key is not UTF-8",
         frame(SUBSCRIBE, 0, sub_id, topic, short(b"dev\xff")), "bad_utf8"),
        ("subscribe key with a surrogate",
         frame(SUBSCRIBE, 0, sub_id, topic, short(b"\xed\xb0\x80")), "bad_utf8"),
        ("subscribe with a byte after its key",
         frame(SUBSCRIBE, 0, sub_id, topic, short("k"), b"\x00"), "trailing_bytes"),
        ("unsubscribe ends inside subscription_id", frame(UNSUBSCRIBE, 0, u16(1)), "truncated"),
        ("unsubscribe with a trailing byte", frame(UNSUBSCRIBE, 0, sub_id, b"\x00"),
         "trailing_bytes"),
        ("publish ends inside request_id", frame(PUBLISH, 0, b"\x01"), "truncated"),
        ("publish ends inside topic_id", frame(PUBLISH, 0, u32(0), u16(9)), "truncated"),
        ("publish without its key length", frame(PUBLISH, 0, u32(0), topic), "truncated"),
        ("publish whose key length runs past the end",
         frame(PUBLISH, 0, u32(0), topic, u16(3), b"ab"), "truncated"),
        ("publish key is not UTF-8",
         frame(PUBLISH, 0, u32(0), topic, short(b"\xc3"), PAYLOAD), "bad_utf8"),
        ("subscribed ends inside subscription_id", frame(SUBSCRIBED, 0, u16(1), u8(0)),
         "truncated"),
        ("subscribed with a trailing byte", frame(SUBSCRIBED, 0, sub_id, b"\x00"),
         "trailing_bytes"),
        ("event ends inside subscription_id", frame(EVENT, 0, u16(1)), "truncated"),
        ("event without its key length", frame(EVENT, 0, sub_id), "truncated"),
        ("event whose key length runs past the end",
         frame(EVENT, 0, sub_id, u16(2), b"k"), "truncated"),
        ("event key with an overlong encoding",
         frame(EVENT, 0, sub_id, short(b"\xc0\xaf"), b""), "bad_utf8"),
        ("missed ends inside subscription_id", frame(MISSED, 0, u16(1)), "truncated"),
        ("missed ends inside count", frame(MISSED, 0, sub_id, u16(3)), "truncated"),
        ("missed with a trailing byte", frame(MISSED, 0, sub_id, u32(3), b"\x00"),
         "trailing_bytes"),
        ("subscription ended ends inside subscription_id",
         frame(SUBSCRIPTION_ENDED, 0, u16(1)), "truncated"),
        ("subscription ended without its code", frame(SUBSCRIPTION_ENDED, 0, sub_id),
         "truncated"),
        ("subscription ended without its message length",
         frame(SUBSCRIPTION_ENDED, 0, sub_id, u8(7)), "truncated"),
        ("subscription ended whose message length runs past the end",
         frame(SUBSCRIPTION_ENDED, 0, sub_id, u8(7), u16(4), b"no"), "truncated"),
        ("subscription ended message is not UTF-8",
         frame(SUBSCRIPTION_ENDED, 0, sub_id, u8(7), short(b"\x80")), "bad_utf8"),
        ("subscription ended with bytes after its message",
         frame(SUBSCRIPTION_ENDED, 0, sub_id, u8(7), short("no"), b"\x00"), "trailing_bytes"),
        *history_invalid(),
    ]


def history_invalid():
    """SUBSCRIBE_FROM, SUBSCRIBED_AT and EVENT_AT cut short, with bad keys, or too long."""
    sub_id, topic, epoch, offset = u32(1), u32(9), u64(7), u64(41)
    return [
        ("subscribe from ends inside its epoch",
         frame(SUBSCRIBE_FROM, 0, sub_id, topic, u32(7)), "truncated"),
        ("subscribe from ends inside its offset",
         frame(SUBSCRIBE_FROM, 0, sub_id, topic, epoch, u16(41)), "truncated"),
        ("subscribe from without its key length",
         frame(SUBSCRIBE_FROM, 0, sub_id, topic, epoch, offset), "truncated"),
        ("subscribe from key is not UTF-8",
         frame(SUBSCRIBE_FROM, 0, sub_id, topic, epoch, offset, short(b"\xff")), "bad_utf8"),
        ("subscribe from with a byte after its key",
         frame(SUBSCRIBE_FROM, 0, sub_id, topic, epoch, offset, short("k"), b"\x00"),
         "trailing_bytes"),
        ("subscribed at without its recovery", frame(SUBSCRIBED_AT, 0, sub_id), "truncated"),
        ("subscribed at ends inside its offset",
         frame(SUBSCRIBED_AT, 0, sub_id, u8(1), epoch, u32(41)), "truncated"),
        ("subscribed at with a trailing byte",
         frame(SUBSCRIBED_AT, 0, sub_id, u8(1), epoch, offset, b"\x00"), "trailing_bytes"),
        ("event at ends inside its offset", frame(EVENT_AT, 0, sub_id, u32(41)), "truncated"),
        ("event at without its key length", frame(EVENT_AT, 0, sub_id, offset), "truncated"),
        ("event at whose key length runs past the end",
         frame(EVENT_AT, 0, sub_id, offset, u16(3), b"k"), "truncated"),
        ("event at key is not UTF-8",
         frame(EVENT_AT, 0, sub_id, offset, short(b"\xc3"), PAYLOAD), "bad_utf8"),
    ]


def auth_invalid():
    return [
        ("auth ends inside request_id", frame(AUTH, 0, u16(1)), "truncated"),
        ("auth without its token length", frame(AUTH, 0, u32(1)), "truncated"),
        ("auth whose token length runs past the end",
         frame(AUTH, 0, u32(1), u16(10), b"eyJ"), "truncated"),
        ("auth with bytes after its token", frame(AUTH, 0, u32(1), short(b"t"), b"\x00"),
         "trailing_bytes"),
        ("auth ok ends inside request_id", frame(AUTH_OK, 0, u16(1)), "truncated"),
        ("auth ok ends inside expires_in_ms", frame(AUTH_OK, 0, u32(1), u16(1)), "truncated"),
        ("auth ok with a trailing byte", frame(AUTH_OK, 0, u32(1), u32(0), b"\x00"),
         "trailing_bytes"),
        ("welcome without auth_expires_in_ms",
         frame(WELCOME, 0, u16(1), u32(MAX_FRAME_SIZE), u32(1), u32(0), short("gw")),
         "truncated"),
        ("welcome ends inside auth_expires_in_ms",
         frame(WELCOME, 0, u16(1), u32(MAX_FRAME_SIZE), u32(1), u32(0), short("gw"), u16(0)),
         "truncated"),
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
