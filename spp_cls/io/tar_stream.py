"""The regular files of a tar archive, read in one pass from any readable byte stream (a file, a pipe, curl).

Why not Python's ``tarfile`` (which webdataset's tar iterator uses): its stream mode reads through a 10 KB
buffer and builds a ``TarInfo`` with every field decoded for each member, a cost per training sample that shows
in the loader's throughput (docs/data.md, "Loader speed"). A shard reader needs only the name and the bytes of
each regular file, in order: this reads each header with one call and each file's bytes with another.

What it reads: POSIX ustar (with the ``prefix`` field), pax (per-file ``path`` and ``size`` records; global
headers are ignored), GNU tar (``././@LongLink`` long names, base-256 sizes), and gzip-compressed archives
(recognised by their magic bytes). Directories, links and devices are passed over. The end is the first
all-zero block, or the end of the stream at a header boundary (as ``tarfile`` allows). An empty stream, a
header whose checksum is wrong, a stream that ends inside a header or a file's bytes, and a gzip stream that
is cut short, corrupt or fails its CRC raise ``TarFormatError``: the caller decides whether to skip the rest
of the archive. A gzip stream is read to its end after the end-of-archive block, because its CRC is checked
only there: a corrupt compressed shard is then reported, not read silently (its members before the error
have already been yielded, as with any archive broken midway).
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO, Iterator, Optional, Protocol

BLOCK = 512
GZIP_MAGIC = b"\x1f\x8b"
_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b"0", b"\x00", b"7")  # file, old-style file, contiguous file
_PAX_HEADER, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK = b"x", b"g", b"L", b"K"


class TarFormatError(ValueError):
    """The bytes are not a (complete) tar archive; the message says where."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Prefixed:
    """A stream with bytes already read from its start put back in front (for gzip's sniffed magic)."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(size)
        if size < 0:
            data, self.head = self.head + self.rest.read(), b""
            return data
        data, self.head = self.head[:size], self.head[size:]
        return data if len(data) == size else data + self.rest.read(size - len(data))

    def seek(self, offset: int) -> int:
        """gzip only seeks to rewind, which a one-pass reader never asks for."""
        raise io.UnsupportedOperation("a tar stream is read in one pass")


class _Gunzipped:
    """A gzip stream's uncompressed bytes, its failures raised as ``TarFormatError`` (``gzip`` raises
    ``EOFError`` for a cut stream, ``BadGzipFile`` for a CRC or length mismatch, ``zlib.error`` for corrupt
    data), so that callers handle one error type for every broken archive."""

    def __init__(self, compressed: _Prefixed) -> None:
        self.file = gzip.GzipFile(fileobj=compressed, mode="rb")
        self.position = 0  # uncompressed bytes delivered, for the error messages

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.file.read(size)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise TarFormatError(
                f"a broken gzip stream after {self.position} uncompressed bytes ({type(err).__name__}: {err})"
            ) from None
        self.position += len(data)
        return data

    def drain(self) -> None:
        """Read to the end of the gzip stream: its CRC and length are checked there and only there."""
        while self.read(1 << 16):
            pass


def _read_exactly(stream: Readable, size: int, what: str) -> bytes:
    """``size`` bytes, in as many reads as the stream needs (pipes return short reads)."""
    data = stream.read(size)
    if len(data) == size:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            raise TarFormatError(f"the archive ends inside {what} ({got} of {size} bytes)")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _number(field: bytes) -> int:
    """An octal numeric field, or GNU's base-256 form (first byte 0x80 or 0xff)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else value
    text = field.split(b"\x00", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"not a tar header (numeric field {field!r})") from None


def _check_header(header: bytes, offset: int) -> None:
    """The checksum: the sum of the header's bytes with the checksum field counted as spaces (old archives
    summed them as signed bytes; both are accepted, as tar does)."""
    stored = _number(header[148:156])
    unsigned = sum(header) - sum(header[148:156]) + 8 * 32
    if stored == unsigned:
        return
    signed = (
        unsigned
        - 256 * sum(1 for byte in header if byte > 127)
        + 256 * sum(1 for byte in header[148:156] if byte > 127)
    )
    if stored != signed:
        raise TarFormatError(f"not a tar header at byte {offset} (bad checksum)")


def _name(header: bytes) -> str:
    name = header[0:100].split(b"\x00", 1)[0]
    # ustar's prefix field: POSIX magic "ustar\0" only; GNU's "ustar  \0" headers keep atime/ctime there
    if header[257:263] == b"ustar\x00" and header[345] != 0:
        name = header[345:500].split(b"\x00", 1)[0] + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def _pax_records(data: bytes, offset: int) -> dict[str, str]:
    """The "LENGTH key=value\\n" records of a pax extended header."""
    records, position = {}, 0
    try:
        while position < len(data) and data[position] != 0:
            space = data.index(b" ", position)
            length = int(data[position:space])
            if not space - position < length <= len(data) - position:
                raise ValueError(f"a record of {length} bytes at {position}")
            key, _, value = data[space + 1 : position + length - 1].partition(b"=")
            records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
            position += length
        if "size" in records:
            int(records["size"])
    except ValueError as err:
        raise TarFormatError(f"a broken pax header at byte {offset} ({err})") from None
    return records


def tar_members(stream: BinaryIO | Readable) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file of the archive in ``stream``, in archive order."""
    first = stream.read(BLOCK)
    while first and len(first) < BLOCK:  # a pipe may return fewer bytes than gzip's magic: sniff a whole block
        more = stream.read(BLOCK - len(first))
        if not more:
            break
        first += more
    if not first:
        raise TarFormatError("empty file")
    gunzipped: Optional[_Gunzipped] = None
    if first.startswith(GZIP_MAGIC):
        stream = gunzipped = _Gunzipped(_Prefixed(first, stream))
        first = stream.read(BLOCK)
    header: Optional[bytes] = first
    offset = 0  # of the current header in the (uncompressed) archive, for the error messages
    long_name: Optional[str] = None
    pax: dict[str, str] = {}
    while True:
        if header is None:
            header = stream.read(BLOCK)
            if not header:
                return  # the end of the stream at a header boundary
        if len(header) < BLOCK:
            header += _read_exactly(stream, BLOCK - len(header), f"the header at byte {offset}")
        if header == _ZERO_BLOCK:
            if gunzipped is not None:
                gunzipped.drain()
            return  # the end-of-archive marker
        _check_header(header, offset)
        kind = header[156:157]
        # a pax size belongs to the member the pax header describes, never to the headers read on the way to it
        overridden = "size" in pax and kind not in (_PAX_HEADER, _PAX_GLOBAL, _GNU_LONG_NAME, _GNU_LONG_LINK)
        size = int(pax["size"]) if overridden else _number(header[124:136])
        data = _read_exactly(stream, size, f"the member at byte {offset}") if size else b""
        padding = -size % BLOCK
        if padding:  # read past, not sliced off: no copy of the file's bytes
            _read_exactly(stream, padding, f"the member at byte {offset}")
        if kind == _PAX_HEADER:
            pax = _pax_records(data, offset)
        elif kind == _GNU_LONG_NAME:
            long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif kind not in (_PAX_GLOBAL, _GNU_LONG_LINK):
            name = pax.get("path") or long_name or _name(header)
            long_name, pax = None, {}
            if kind in _REGULAR and not name.endswith("/"):
                yield name, data
        offset += BLOCK + size + padding
        header = None
