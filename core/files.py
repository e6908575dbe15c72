"""Writing and reading files so that a crash never leaves half of one: the one atomic-write helper of the
project (run folders, workspace settings, exports, checkpoints), and the safetensors files of checkpoints.

    with atomic_path("out.zip") as tmp: write_the_zip(tmp)     # replaces out.zip only when it is complete
    atomic_write("metrics.json", text); write_json(path, obj); read_json(path)
    with open_append("events.jsonl") as fh: fh.write(line)     # never through a link in its place
    save_tensors({"w": t}, "state.safetensors", metadata={...}); load_tensors(path); read_metadata(path)
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:                 # torch is imported only by the functions that need it: a job or a page that
    import torch                  # never touches tensors starts without it


# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that needs a file name (safetensors, PNG, zip);
    it replaces `path` when the block ends without error, and is removed when it fails."""
    path = Path(path)
    check_output_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def check_output_path(path: Path) -> None:
    """Only a regular file (or a link, which is replaced, never written through) is ever replaced: an output
    naming a folder ended in IsADirectoryError, and one naming a device (as root, `--out /dev/full`) replaced
    the device with a regular file."""
    import stat
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return                    # not there yet (or its folder is not): written as a new file
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    from .errors import ParamError
    what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, a pipe or a socket)"
    raise ParamError(f"{path} is {what}; name a file to write (nothing but a regular file is ever replaced)")


def open_append(path: str | Path, binary: bool = False):
    """`path` opened for appending, never through a link: a link in its place (put there by whoever can write
    the folder) is removed and a new regular file started, so an append never lands outside the folder."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        path.unlink()
        fd = os.open(path, flags | os.O_EXCL, 0o644)
    return os.fdopen(fd, "ab") if binary else os.fdopen(fd, "a", encoding="utf-8")


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` to `path` in one step: readers see the old file or the whole new one, never half."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=1, ensure_ascii=False))


def read_json(path: str | Path) -> dict | None:
    """A JSON object from `path`; None when missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------
_OS_ERROR = re.compile(r"os error (\d+)")


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """`safetensors.torch.save_file` into `path` atomically, with a failed write raised as the `OSError` it
    is (safetensors raises its own `SafetensorError`): a full disk while saving a checkpoint then reads "the
    disk is full", like any other write, instead of an internal error. An earlier file at `path` stays whole."""
    import safetensors.torch
    from safetensors import SafetensorError
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as err:
            text = str(err)
            code = _OS_ERROR.search(text)
            if code is None and "No space left" not in text and "I/O error" not in text:
                raise   # not a write failure (a bad tensor): a bug, reported as such
            if code:
                number = int(code.group(1))
            else:
                number = errno.ENOSPC if "No space left" in text else errno.EIO
            raise OSError(number, text, str(path)) from err     # the half-written temporary file goes


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open
    with safe_open(str(path), "pt") as fh:
        return dict(fh.metadata() or {})


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(path))



# ---------------------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A cell for a CSV a user downloads and may open in a spreadsheet: text starting with one of
    = + - @ TAB CR (the OWASP rule for formula injection) gets a leading single quote, so a class folder
    named '=HYPERLINK(...)' is shown as text, never run. Numbers pass unchanged (-0.5 stays a number)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(values: list[Any]) -> list[Any]:
    """csv_cell over a row: `csv.writer(f).writerow(csv_row([...]))` in every CSV meant for download."""
    return [csv_cell(v) for v in values]


def csv_value(text: str) -> str:
    """A cell read back from a CSV written through csv_cell: the quote csv_cell added is taken off again
    (a leading ' followed by one of = + - @ TAB CR), so names and numbers read back as they were written."""
    if len(text) > 1 and text[0] == "'" and text[1] in "=+-@\t\r":
        return text[1:]
    return text
