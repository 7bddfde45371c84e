"""Reading the files staff give the ledger (`apply` lines, CSV imports, mapping files).

One reader for all of them, so each is bounded the same way: UTF-8, at most
MAX_INPUT_BYTES, and a device or pipe that never ends is refused early. Standard input
(`STDIN`: `ledger apply -`, `ledger practice import -`) is read the same way.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ledger.domain.errors import InvalidInput

MAX_INPUT_BYTES = 4 * 1024**3
MAX_APPLY_REQUEST_BYTES = 16 * 1024**2
"""The most bytes of a file of commands the service reads in one request (`POST /apply`,
16 MiB): the body is held in memory with every line's outcome, so a shared service bounds
it well below a file's bound. `ledger apply --server` sends a larger file in parts of at
most this many bytes, whole lines each; an all-or-nothing import must fit in one."""
_CHUNK = 1024**2


def read_text(path: Path, *, encoding: str = "utf-8") -> str:
    """A whole UTF-8 text file of at most MAX_INPUT_BYTES, read a chunk at a time.

    Raises InvalidInput (rule `file`, exit 2) for a file that cannot be read, is
    larger or is not UTF-8, as soon as the chunk that shows it is read. A file that is
    not a regular file (a device or pipe, which may never end: `/dev/zero`,
    `/dev/urandom`) is also refused at its first NUL byte, rather than read until
    memory runs out; in a regular file a NUL is left to the parser, which names its
    line and field.
    """
    name = _name(path)
    decoder = codecs.getincrementaldecoder(encoding)()
    parts: list[str] = []
    read = 0
    for chunk in _chunks(path):
        parts.append(_decode(name, decoder, chunk, read))
        read += len(chunk)
    parts.append(_decode(name, decoder, b"", read, final=True))
    return "".join(parts)


def read_bytes(path: Path) -> bytes:
    """A whole file's bytes, bounded as `read_text` bounds text (proof bundles, checkpoint
    notes): at most MAX_INPUT_BYTES, and a device or pipe is refused at its first NUL byte
    (`/dev/zero`, `/dev/urandom`), rather than read until memory runs out. Raises
    InvalidInput (rule `file`, exit 2) as `read_text` does."""
    return b"".join(_chunks(path))


def _name(path: Path) -> str | Path:
    return "standard input" if path is STDIN else path


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes a chunk at a time, each checked against the bounds (`_check_chunk`)
    before it is handed on; InvalidInput (rule `file`) for a file that cannot be read."""
    name = _name(path)
    read = 0
    try:
        with _opened(path) as stream:
            endless = not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
            while chunk := stream.read(_CHUNK):
                _check_chunk(name, chunk, read, endless=endless)
                read += len(chunk)
                yield chunk
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InvalidInput("file", f"cannot read {name}: {reason}") from None


STDIN = Path("-")
"""Standard input, as this very object (`ledger apply -`): a Path that only equals it
(`Path("./-")`, the file named -) is a file."""


def input_path(named: str) -> Path:
    """The file a command line names: `-` alone is standard input (STDIN); anything else,
    `./-` included, is the file of that name (as for cat)."""
    return STDIN if named == "-" else Path(named)


def source_name(path: Path) -> str:
    """How reports and errors name an input: `standard input`, or the file's name."""
    return "standard input" if path is STDIN else path.name


def _opened(path: Path) -> BinaryIO:
    if path is STDIN:  # its descriptor, whatever it is (a pipe, a file, a socket)
        return open(0, "rb", closefd=False)  # closed by the caller; fd 0 stays open
    return path.open("rb")


def _check_chunk(path: Path | str, chunk: bytes, before: int, *, endless: bool) -> None:
    if before + len(chunk) > MAX_INPUT_BYTES:
        raise InvalidInput("file", f"{path} is larger than {MAX_INPUT_BYTES // 1024**3} GiB: "
                           "split it into smaller files")
    nul = chunk.find(b"\x00") if endless else -1
    if nul >= 0:
        raise InvalidInput("file", f"{path} holds a NUL byte at byte {before + nul}: "
                           "it is not a text file")


def _decode(path: Path | str, decoder: codecs.IncrementalDecoder, chunk: bytes, before: int, *,
            final: bool = False) -> str:
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError as error:
        raise InvalidInput(
            "file", f"{path} is not UTF-8 text (byte {before + error.start} cannot be read)"
            f"{_how_to_save(path)}"
        ) from None


_SPREADSHEETS = (".csv", ".xlsx", ".xls", ".xlsm", ".ods")


def _how_to_save(path: Path | str) -> str:
    """A CSV saved by Excel in its default encoding, or the workbook itself, is the usual
    cause: say how to save one the ledger reads."""
    if str(path).lower().endswith(_SPREADSHEETS):
        return ': save it as "CSV UTF-8 (Comma delimited)" (Excel) or CSV in UTF-8'
    return ""
