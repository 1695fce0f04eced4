"""Tests for appgw.websocket: the accept key and Close frames both sides use."""

from __future__ import annotations

import pytest

from appgw.websocket import accept_key, close_frame, parse_close_payload
from appgw.worker.codec.frames import FrameTracker

CLOSE = 0x8


def decode_one(frame: bytes) -> tuple[int, bool, bytes | None, bytes]:
    """(opcode, fin, key, unmasked payload) of exactly one short frame (RFC 6455 5.2)."""
    b0, b1 = frame[0], frame[1]
    n, pos = b1 & 0x7F, 2
    assert n <= 125
    key = None
    if b1 & 0x80:
        key, pos = frame[pos : pos + 4], pos + 4
    body = frame[pos:]
    assert len(body) == n
    if key:
        body = bytes(byte ^ key[i % 4] for i, byte in enumerate(body))
    return b0 & 0x0F, bool(b0 & 0x80), key, body


def test_accept_key_matches_the_example_of_rfc_6455() -> None:
    # RFC 6455 section 1.3
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(b" dGhlIHNhbXBsZSBub25jZQ== ") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_close_frame_round_trip() -> None:
    for masked in (False, True):
        for code, reason in [(1001, ""), (1000, "done"), (4000, "ünïcödé ✓")]:
            frame = close_frame(code, reason, masked=masked)
            opcode, fin, key, payload = decode_one(frame)
            assert (opcode, fin, key is not None) == (CLOSE, True, masked)
            assert parse_close_payload(payload) == (code, reason)
            tracker = FrameTracker(masked=masked)
            tracker.feed(frame)
            assert tracker.at_boundary and tracker.close_code == code


def test_close_frame_default_is_going_away() -> None:
    assert decode_one(close_frame(masked=False)) == (CLOSE, True, None, b"\x03\xe9")


def test_close_frame_keys_are_random() -> None:
    keys = {decode_one(close_frame(masked=True))[2] for _ in range(8)}
    assert len(keys) > 1


def test_close_frame_truncates_a_long_reason_at_a_character_boundary() -> None:
    for reason in ["x" * 500, "é" * 200, "✓" * 100, "a" + "😀" * 40, "ab" + "😀" * 40]:
        for masked in (False, True):
            frame = close_frame(1001, reason, masked=masked)
            _, _, _, payload = decode_one(frame)
            assert len(payload) <= 125
            text = payload[2:].decode("utf-8")  # strict: valid UTF-8
            assert reason.startswith(text) and len(payload[2:]) > 125 - 2 - 4
            assert parse_close_payload(payload) == (1001, text)


def test_close_frame_refuses_codes_that_cannot_be_sent() -> None:
    for code in (0, 999, 1004, 1005, 1006, 1015, 5000, -1):
        with pytest.raises(ValueError):
            close_frame(code, masked=False)


def test_parse_close_payload() -> None:
    assert parse_close_payload(b"") == (None, "")
    assert parse_close_payload(b"\x03") == (None, "")
    assert parse_close_payload(b"\x03\xe8") == (1000, "")
    assert parse_close_payload(memoryview(b"\x03\xe9ok")) == (1001, "ok")
    assert parse_close_payload(b"\x03\xe9\xff") == (1001, "\ufffd")
