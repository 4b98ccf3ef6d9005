"""The tar headers of a build context (docs/build-context.md#the-archives-shape): uid/gid 0, no owner names, mtime 0.

USTAR headers are built here directly when a name and link fit as ASCII (the common case, several times faster than
`tarfile.TarInfo.tobuf`); anything else goes through `tarfile` with its PAX records. Either way the bytes are the ones
`tarfile` writes in PAX format, so the same tree gives the same archive.
"""

from __future__ import annotations

import struct

__all__ = ["BLOCK", "DIRTYPE", "PADDING", "REGTYPE", "SYMTYPE", "end_of_archive", "file_header", "tar_header"]

BLOCK = 512  # tarfile.BLOCKSIZE; tarfile itself is imported only for a header that needs PAX records (start-up)
RECORD = 20 * BLOCK  # tarfile.RECORDSIZE
REGTYPE, DIRTYPE, SYMTYPE = b"0", b"5", b"2"
#: Zero bytes that pad `n` bytes of content to a whole block, by `n % 512`.
PADDING = [bytes(-n % BLOCK) for n in range(BLOCK)]
U64 = struct.Struct(">Q").pack
U32_U64 = struct.Struct(">IQ").pack

_IDS = b"0000000\x000000000\x00"  # uid and gid 0
_MTIME = b"00000000000\x00"
# magic "ustar\0" version "00", empty uname and gname, empty device numbers and prefix, padding to 512 bytes.
_USTAR_TAIL = b"ustar\x0000" + bytes(32 + 32 + 8 + 8 + 155 + 12)
# Type flag, empty link name and the rest, with the sum of their bytes (for the checksum), per member type.
_TAILS = {kind: (kind + bytes(100) + _USTAR_TAIL, sum(kind + bytes(100) + _USTAR_TAIL)) for kind in (b"0", b"2", b"5")}
_FILE_TAIL = _TAILS[REGTYPE][0]
_MAX_USTAR_SIZE = 8**11 - 1


def tar_header(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> bytes:
    """The header of one member: the bytes `tarfile` writes in PAX format (`TarInfo.tobuf`), built directly when the
    name and link fit USTAR as ASCII; otherwise by `tarfile` itself. Directory names get their `/` here.
    """
    stored = name + "/" if kind == DIRTYPE and not name.endswith("/") else name
    fits = len(stored) <= 100 and len(linkname) <= 100 and 0 <= size <= _MAX_USTAR_SIZE
    if fits and stored.isascii() and linkname.isascii():
        head = b"%s%07o\x00%s%011o\x00%s" % (
            stored.encode("ascii").ljust(100, b"\x00"),
            mode & 0o7777,
            _IDS,
            size,
            _MTIME,
        )
        if linkname:
            block = kind + linkname.encode("ascii").ljust(100, b"\x00") + _USTAR_TAIL
            tail = (block, sum(block))
        else:
            tail = _TAILS[kind]
        # The checksum counts its own field as eight spaces (256).
        return b"%s%06o\x00 %s" % (head, sum(head) + tail[1] + 256, tail[0])
    import tarfile

    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def file_header(name: str, encoded: bytes, mode: int, size: int) -> bytes:
    """`tar_header(name, REGTYPE, mode, size)` for a regular file whose UTF-8 name is `encoded`: the hot path, run
    once per file, with the checksum summed from precomputed parts."""
    if len(encoded) <= 100 and size <= _MAX_USTAR_SIZE and encoded.isascii():
        middle = _FILE_MIDDLES.get((mode, size))
        if middle is None:
            middle = _file_middle(mode, size)
        return b"".join((encoded.ljust(100, b"\x00"), middle[0], b"%06o\x00 " % (sum(encoded) + middle[1]), _FILE_TAIL))
    return tar_header(name, REGTYPE, mode, size)


# A file header between its name and its checksum (mode, ids, size, mtime) with the sum of every byte but the name's
# (the checksum field counted as spaces), by (mode, size): most files of a tree share a few, so each is made once.
_FILE_MIDDLES: dict[tuple[int, int], tuple[bytes, int]] = {}


def _file_middle(mode: int, size: int) -> tuple[bytes, int]:
    middle = b"%07o\x00%s%011o\x00%s" % (mode, _IDS, size, _MTIME)
    entry = (middle, sum(middle) + 256 + _TAILS[REGTYPE][1])
    if len(_FILE_MIDDLES) < 4096:  # a bound: memory flat however many sizes a tree holds
        _FILE_MIDDLES[mode, size] = entry
    return entry


def end_of_archive(written: int) -> bytes:
    """What closes an archive of `written` bytes: two zero blocks, padded to a full record as GNU tar and tarfile
    do."""
    total = written + 2 * BLOCK
    return bytes(2 * BLOCK + (-total % RECORD))
