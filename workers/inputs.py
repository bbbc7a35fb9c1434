"""Reading the files users hand to the CLI: regular files only, bounded in size, UTF-8, one-line errors.

A spec path that is a device (`/dev/zero`), a folder, a fifo or a 2 GB log must be refused by name
before anything reads it, and a file that is not UTF-8 text says where it stops being text.
"""

from __future__ import annotations

import stat
from pathlib import Path

SPEC_LIMIT = 1024 * 1024  # a spec is a page of Markdown; a megabyte is already far past any real one
SCRIPT_LIMIT = 16 * 1024 * 1024  # scripted model turns and patches can be larger


class InputFileError(ValueError):
    """A file argument cannot be used; the message names the file and what to do."""


def check_input_file(path: Path, what: str, limit: int = SPEC_LIMIT) -> None:
    """Refuse what is not a regular, readable file of at most `limit` bytes."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as error:
        raise InputFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"{path}: is a folder, not a {what} file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{path}: is not a regular file (a device, pipe or socket); pass a {what} file")
    if info.st_size > limit:
        raise InputFileError(f"{path}: {info.st_size:,} bytes; a {what} file is at most {limit:,} bytes")


def read_text_input(path: Path, what: str, limit: int = SPEC_LIMIT) -> str:
    """The file's text, checked as `check_input_file` does and decoded as UTF-8."""
    check_input_file(path, what, limit)
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise InputFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(data) > limit:  # it grew since we looked
        raise InputFileError(f"{path}: more than {limit:,} bytes; a {what} file is at most {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputFileError(f"{path}:{line}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x}); "
                             "save the file as UTF-8") from None
