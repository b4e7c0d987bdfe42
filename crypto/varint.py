"""Unsigned LEB128 integers, as version 2's binary fields write them (PROTOCOL.md §9.1).

Seven bits a byte, the least significant group first, the high bit set on
every byte but the last; at most ten bytes (64 bits), and minimal: a last
byte of zero after another byte is refused, so every value has one encoding
(what is signed or hashed cannot be re-encoded into other bytes).
"""

from __future__ import annotations

__all__ = ["MAX_BYTES", "read", "write"]

#: The longest encoding (a 64-bit value).
MAX_BYTES = 10


def write(out: bytearray, value: int) -> None:
    """Append ``value`` (0 ≤ value < 2**64) to ``out``."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"a varint holds 0 .. 2**64 - 1, not {value}")
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def read(data: bytes, at: int) -> tuple[int, int]:
    """The value at ``data[at:]`` and the offset after it.

    Raises:
        ValueError: truncated, longer than ten bytes or 64 bits, or not minimal.
    """
    value = shift = 0
    for index in range(at, min(len(data), at + MAX_BYTES)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and index > at:
                raise ValueError("varint not minimal")
            if value >> 64:
                raise ValueError("varint above 64 bits")
            return value, index + 1
        shift += 7
    raise ValueError("varint truncated or longer than ten bytes")
