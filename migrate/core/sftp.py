"""Two things paramiko's public SFTP API does not do, which file writes need.

- Create a file with its mode. `SFTPClient.open` sends an empty attribute block, so the server
  creates the file with its default (0666 less its umask, usually 0644) and a chmod can only come
  after: a file meant to be 0600 is readable by everyone for a moment. `create_new` sends the mode
  in the open request itself and refuses a name that already exists (a temporary name is ours
  alone, never a file or symlink placed there by someone else).
- Report a failed write. paramiko files the answers to pipelined writes under no file, so an
  error answer (a full disk) is dropped and the write passes as a success. `write_all` pipelines
  all but the last byte, then writes that one unpipelined: paramiko then waits for every
  outstanding answer in order and raises on the first error.

Only the transport uses these; a test over real SSH checks both (tests/core/test_transport_writes.py).
"""

from __future__ import annotations

import paramiko
from paramiko.sftp import CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE


def create_new(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """Open a new file for writing, created with `mode` (narrowed by the server's umask, which
    the caller widens back with a chmod of the open file before writing); fails if path exists."""
    attributes = paramiko.SFTPAttributes()
    attributes.st_mode = mode
    # What SFTPClient.open does, with the attributes filled in.
    kind, message = sftp._request(CMD_OPEN, sftp._adjust_cwd(path),
                                  SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, attributes)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError(f"expected a file handle when opening {path}")
    return paramiko.SFTPFile(sftp, message.get_binary(), "wb")


def write_all(fh: paramiko.SFTPFile, data: bytes) -> None:
    """Write data at full speed and raise OSError if the server refused any part of it."""
    if not data:
        return
    fh.set_pipelined(True)
    fh.write(data[:-1])
    fh.flush()
    fh.set_pipelined(False)
    fh.write(data[-1:])
    fh.flush()
