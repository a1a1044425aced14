"""``tar_members`` against archives written by Python's ``tarfile`` in every format, and against broken ones."""

from __future__ import annotations

import gzip
import io
import random
import tarfile

import pytest

from spp_cls.io.tar_stream import TarFormatError, tar_members

LONG = "class_" + "x" * 120 + "/image.jpg"  # over ustar's 100-character name field
UNICODE = "n\u00e4me/\u00e9t\u00e9.jpg"


def _files(seed: int = 0) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    sizes = [0, 1, 511, 512, 513, 10_000, 70_001]
    return [(f"train_{i:08d}.jpg", rng.randbytes(size)) for i, size in enumerate(sizes)]


def _archive(files: list[tuple[str, bytes]], fmt: int, extra: bool = False) -> bytes:
    """A tar of ``files`` (and, with ``extra``, a directory and a symlink, which are not regular files)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        if extra:
            directory = tarfile.TarInfo("some_dir")
            directory.type = tarfile.DIRTYPE
            tar.addfile(directory)
            link = tarfile.TarInfo("a_link")
            link.type, link.linkname = tarfile.SYMTYPE, "train_00000000.jpg"
            tar.addfile(link)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Trickle(io.RawIOBase):
    """A pipe-like stream that returns at most ``chunk`` bytes a read."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.position, self.chunk = data, 0, chunk

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.chunk if size < 0 else min(size, self.chunk)
        data = self.data[self.position : self.position + size]
        self.position += len(data)
        return data


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_every_format_gives_tarfiles_names_and_bytes(fmt: int) -> None:
    files = _files()
    if fmt != tarfile.USTAR_FORMAT:
        files += [(LONG, b"long name"), (UNICODE, b"unicode name")]
    else:
        files += [("a" * 90 + "/" + "b" * 90 + ".jpg", b"ustar prefix")]  # split into prefix + name
    archive = _archive(files, fmt, extra=True)
    assert list(tar_members(io.BytesIO(archive))) == files
    assert list(tar_members(Trickle(archive, 100))) == files  # short reads, as from a pipe


def test_gzip_compressed_archives_are_read() -> None:
    files = _files(1)
    assert list(tar_members(io.BytesIO(gzip.compress(_archive(files, tarfile.PAX_FORMAT))))) == files


def test_a_stream_that_ends_at_a_header_boundary_ends_the_archive() -> None:
    files = _files(2)
    archive = _archive(files, tarfile.GNU_FORMAT)
    without_end_marker = archive[: archive.rindex(files[-1][1]) + len(files[-1][1])]
    without_end_marker += bytes(-len(without_end_marker) % 512)
    assert list(tar_members(io.BytesIO(without_end_marker))) == files


def test_an_empty_stream_is_not_an_archive() -> None:
    with pytest.raises(TarFormatError, match="empty file"):
        list(tar_members(io.BytesIO(b"")))


def test_a_stream_cut_inside_a_file_raises_after_the_complete_files() -> None:
    files = _files(3)
    archive = _archive(files, tarfile.GNU_FORMAT)
    cut = archive.index(files[-1][1]) + 100
    members = tar_members(io.BytesIO(archive[:cut]))
    assert [next(members) for _ in files[:-1]] == files[:-1]
    with pytest.raises(TarFormatError, match="ends inside the member"):
        next(members)


def test_a_stream_cut_inside_a_header_raises() -> None:
    archive = _archive(_files(4)[:2], tarfile.GNU_FORMAT)
    with pytest.raises(TarFormatError, match="ends inside the header"):
        list(tar_members(io.BytesIO(archive[:200])))


def test_garbage_is_refused_by_the_header_checksum() -> None:
    with pytest.raises(TarFormatError, match="bad checksum|not a tar header"):
        list(tar_members(io.BytesIO(random.Random(5).randbytes(4096))))
    archive = bytearray(_archive(_files(5)[:2], tarfile.GNU_FORMAT))
    archive[10] ^= 0x01  # one flipped bit in the first name
    with pytest.raises(TarFormatError, match="bad checksum"):
        list(tar_members(io.BytesIO(bytes(archive))))


def test_base256_sizes_of_gnu_headers_are_read() -> None:
    data = b"z" * 1000
    header = bytearray(_archive([("big.bin", data)], tarfile.GNU_FORMAT)[:512])
    header[124:136] = b"\x80" + (1000).to_bytes(11, "big")  # how GNU tar writes sizes over 8 GiB
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\x00 ".encode()
    archive = bytes(header) + data + bytes(-len(data) % 512) + bytes(1024)
    assert list(tar_members(io.BytesIO(archive))) == [("big.bin", data)]


def test_a_broken_pax_record_is_a_format_error() -> None:
    archive = _archive([(UNICODE, b"data")], tarfile.PAX_FORMAT)  # a pax header first: its records at byte 512
    assert archive[156:157] == b"x"
    length = archive[512:].split(b" ", 1)[0]
    for broken in (b"x" * len(length), b"9" * len(length)):  # not a number; past the header's data
        with pytest.raises(TarFormatError, match="broken pax header at byte 0"):
            list(tar_members(io.BytesIO(archive[:512] + broken + archive[512 + len(length) :])))


def test_a_corrupt_gzip_archive_fails_its_crc_instead_of_giving_corrupt_bytes() -> None:
    """gzip checks its CRC only at the end of the stream, after the tar's end block: it must be read there."""
    files = [(f"s{i}.jpg", random.Random(i).randbytes(3000)) for i in range(5)]  # incompressible: bytes map 1:1
    compressed = bytearray(gzip.compress(_archive(files, tarfile.USTAR_FORMAT)))
    compressed[5000] ^= 0xFF  # inside a stored deflate block: the bytes change, the stream still decodes
    with pytest.raises(TarFormatError, match="broken gzip stream.*CRC check failed"):
        list(tar_members(io.BytesIO(bytes(compressed))))


@pytest.mark.parametrize("keep", [5, 8000, -4])
def test_a_cut_gzip_archive_is_a_format_error(keep: int) -> None:
    compressed = gzip.compress(_archive(_files(6), tarfile.PAX_FORMAT))
    with pytest.raises(TarFormatError, match="broken gzip stream.*EOFError"):
        list(tar_members(io.BytesIO(compressed[:keep])))


def test_a_gzip_archive_read_in_one_byte_pieces_is_recognised() -> None:
    files = _files(7)
    assert list(tar_members(Trickle(gzip.compress(_archive(files, tarfile.GNU_FORMAT)), 1))) == files


def test_gnu_headers_have_no_ustar_prefix_field() -> None:
    """GNU tar's magic is "ustar  \\0" and its incremental archives (``tar -G``) store atime and ctime where
    ustar has the prefix: those bytes are no part of the name."""
    data = b"gnu"
    header = bytearray(_archive([("dir/file.jpg", data)], tarfile.GNU_FORMAT)[:512])
    assert header[257:265] == b"ustar  \x00"
    header[345:357] = b"15000000000\x00"  # atime, as GNU tar --incremental writes it
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\x00 ".encode()
    archive = bytes(header) + data + bytes(-len(data) % 512) + bytes(1024)
    assert list(tar_members(io.BytesIO(archive))) == [("dir/file.jpg", data)]


def _pax_block(records: dict[str, str], kind: bytes) -> bytes:
    """A pax header of ``kind`` (``x``: the next member's, ``g``: global) with its records, as tarfile writes it."""
    return tarfile.TarInfo._create_pax_generic_header(records, kind, "utf-8")  # type: ignore[attr-defined]


@pytest.mark.parametrize("between", ["global pax header", "GNU long link name"])
def test_a_pax_size_applies_to_the_member_it_describes_not_to_the_headers_between(between: str) -> None:
    """An ``x`` header's ``size`` (how pax writes sizes over 8 GiB) belongs to the next *file*: a global header
    or a GNU long-link header between the two keeps its own size, as in tarfile (both over one block here, so
    that reading them with the wrong size would lose the archive's alignment)."""
    data = b"12345"
    member = tarfile.TarInfo("big.bin")  # its own size field left at 0, as for a size the field cannot hold
    if between == "global pax header":
        middle = _pax_block({"comment": "written by some tool " * 40}, tarfile.XGLTYPE)
    else:
        link = tarfile.TarInfo("big.bin")
        link.type, link.linkname = tarfile.LNKTYPE, "target_" + "y" * 700  # GNU tar: a K header
        middle = link.tobuf(tarfile.GNU_FORMAT)[: -tarfile.BLOCKSIZE]  # the K header and its name only
    archive = (
        _pax_block({"size": str(len(data))}, tarfile.XHDTYPE)
        + middle
        + member.tobuf(tarfile.USTAR_FORMAT)
        + data
        + bytes(-len(data) % 512)
        + bytes(1024)
    )
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        read = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isreg()]  # type: ignore[union-attr]
    assert read == [("big.bin", data)]  # the archive is what the test says it is
    assert list(tar_members(io.BytesIO(archive))) == [("big.bin", data)]
