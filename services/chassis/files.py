"""Local state files (rendered configs, logging configs) written safely.

A state file may hold secrets, and its folder may be shared or writable by
someone else: :func:`write_private` never opens an existing path (so a symlink
planted at the target, or at the temporary name, is not followed and nothing
outside the folder is overwritten), creates the content under a fresh name with
mode 0600 (``O_CREAT | O_EXCL | O_NOFOLLOW``) and renames it over the target,
which replaces a link itself rather than its target. Readers see the old file
or the new one, never half of it.
"""

import os
import secrets
import stat
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def write_private(path, text, mode=0o600):
    """Write ``text`` to ``path`` (mode ``mode``) atomically, following no symlink."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, _FLAGS, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # The umask may have narrowed the mode; never widened it. Make it exact.
        os.chmod(temporary, mode, follow_symlinks=False)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


class UnsafeStateFolder(Exception):
    """The state folder is a symlink or someone else's: nothing is written there."""


def private_folder(path):
    """``path`` (and missing parents) as a folder only its owner can enter.

    A folder planted as a symlink (to a place someone else can read) or owned by
    another user is refused rather than written into."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeStateFolder(f"{path} is not a plain folder")
    if info.st_uid != os.getuid():
        raise UnsafeStateFolder(f"{path} belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700, follow_symlinks=False)
    return path
