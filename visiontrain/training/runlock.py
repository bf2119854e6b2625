"""One run directory, one process: an exclusive lock file in RUN_DIR.

Any directory one job writes takes the same lock: `visiontrain-data build` holds
its --output with it.

`flock` on RUN_DIR/.lock. The kernel drops the lock when its process dies, however
it dies, so a lock can never outlive its holder. The file holds the holder's PID,
host and start time, for the refusal message; a clean release empties it, so
content found under a lock we could take is the record of a holder that died
without releasing (kill -9, a crash): the lock is recovered and the log says so.

The file is written in place, not through `fileio`'s rename: a rename would give
the path a new inode, and a second process would then lock a different file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import time

LOCK = ".lock"


class RunDirInUse(FileExistsError):
    """Another live process holds the run directory's lock: a user error (exit code 2).

    A FileExistsError because the tools report those as one line, and a run directory
    that is taken is the user's to resolve (wait, stop the holder, or pick another).
    """


class RunLock:
    """Context manager: holds RUN_DIR/.lock for the block.

    When the block fails before `marker` exists, the lock file and the run directory
    are removed again if this lock created them: a failed start leaves nothing
    behind. The directory goes only if empty, unless `discard`: then with whatever
    the failed start wrote into it (a training's records before its first checkpoint;
    a data build keeps its finished shards for the rerun to resume from).
    """

    def __init__(self, run_dir: str, marker: str, flag: str = "--run_dir", job: str = "run",
                 discard: bool = False):
        self.run_dir = run_dir
        self.flag, self.job = flag, job  # How the refusal names the directory and its user.
        self.discard = discard
        self.path = os.path.join(run_dir, LOCK)
        self.marker = marker
        self.created = False  # the directory, by this process
        self.lock_created = False
        self.locked = False
        self.fd = -1

    def __enter__(self) -> RunLock:
        self.created = not os.path.isdir(self.run_dir)
        os.makedirs(self.run_dir, exist_ok=True)
        self.lock_created = not os.path.exists(self.path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.locked = True
        except BlockingIOError:
            holder = _read(self.fd)
            os.close(self.fd)
            raise RunDirInUse(
                f"{self.flag}={self.run_dir} is in use by PID {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} (since {holder.get('started', '?')}); wait for that "
                f"{self.job} to end or stop it, or pass another {self.flag}."
            ) from None
        except OSError as err:  # a filesystem without locks (some network mounts)
            logging.warning("Cannot lock %s (%s): a second %s into this directory would not "
                            "be refused; run one at a time.", self.path, err, self.job)
        stale = _read(self.fd)
        if stale and self.locked:
            logging.warning(
                "Recovered the lock of %s: PID %s on %s (since %s) ended without releasing "
                "it (killed or crashed).", self.run_dir, stale.get("pid"), stale.get("host"),
                stale.get("started"))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(self.fd)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        failed_start = exc_type is not None and not os.path.exists(
            os.path.join(self.run_dir, self.marker))
        if failed_start and self.lock_created:
            # Removed while still held, so no other process can have taken it meanwhile.
            os.remove(self.path)
        else:
            os.ftruncate(self.fd, 0)
            os.fsync(self.fd)
        if self.locked:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        if failed_start and self.created and self.discard:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        elif failed_start and self.created:
            try:
                os.rmdir(self.run_dir)
            except OSError:  # something else was put there meanwhile: keep it
                pass


def _read(fd: int) -> dict:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return {"pid": text}
