"""schemathesis hooks for `just test` (SCHEMATHESIS_HOOKS=hooks, this directory on PYTHONPATH).

OpenAPI can say that `POST /randomize` takes `image/png`, not what a valid PNG is, so the bodies
schemathesis generates for it are never PNGs and every one is refused with 400. About half of
the ones generated to fit the schema are sent as a real PNG instead, so the stateful phase gets
tokens and follows the links to the task's status and result; the rest keep testing refusals.
"""

import struct
import zlib

import schemathesis


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width: int, height: int) -> bytes:
    """An 8-bit RGB PNG with a gradient, big enough for a few 60x60 tiles and edge strips."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in ((x * 2) % 256, (y * 2) % 256, (x + y) % 256))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


VALID = png(130, 70)


@schemathesis.hook.apply_to(path="/randomize", method="POST")
def before_call(context, case, kwargs):
    # Decided when the case is sent, when its metadata is final: a case generated to break the
    # schema keeps its broken part, since a real PNG in place of a body meant to be invalid
    # would turn a refusal test into an accepted request. Of the others, every second one
    # (by a hash of the generated body, so a replay does the same) is sent as a real PNG.
    meta = getattr(case, "_meta", None)
    if meta is not None and meta.generation.mode.is_negative:
        return
    # The PNG goes in as the transport's body, not as `case.body`: schemathesis would check
    # bytes in place of the generated string against the schema and count the case negative.
    if case.media_type == "image/png" and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        kwargs["data"] = VALID
