"""Stale Snakemake locks after a killed run: told from live ones by a lock the kernel releases when a process dies.

Snakemake marks the files a run works on with lock files under ``.snakemake/locks/`` and removes them when the run
ends; a run killed outright (``kill -9``, out of memory, a lost session) leaves them behind, and the next run stops
with "Directory cannot be locked" until ``snakemake --unlock``. Lock files cannot tell a dead run from a live one.

Here every Snakemake process that runs the workflow (the main process of any command: run, dry run, report, lint,
unlock) holds a shared ``flock`` on ``.snakemake/lungtrial.lock`` for as long as it lives, taken when the Snakefile
is read, before Snakemake writes its own locks. A process that can take the lock exclusively is the only one alive
in the folder, so Snakemake lock files present then belong to no live process and are removed; otherwise they are
left alone and Snakemake decides as usual (a run still going keeps its outputs to itself).

On cluster file systems ``flock`` may be local to each machine (Lustre's ``localflock``, some GPFS and BeeGFS
set-ups): a run on another login node would then look dead. So every holder also leaves a note,
``.snakemake/lungtrial.holders/<host>.<pid>``, removed when it ends; locks are removed only when every note left
behind is from this machine and names a process that no longer exists. A note from another machine keeps the
locks (``snakemake --unlock`` then, as Snakemake itself says).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
from pathlib import Path

_held: int | None = None


def release_stale_locks(snakemake_dir: str | os.PathLike = ".snakemake", *, unlocking: bool = False) -> bool:
    """Take this process's shared lock on ``snakemake_dir/lungtrial.lock`` (kept until the process ends) and remove
    Snakemake's lock files if no other process holds it.

    Call it once, from the main Snakemake process, when the Snakefile is read (Snakemake locks later, after
    building the DAG). Processes that read the Snakefile on other machines or for single jobs must not call it.

    Parameters
    ----------
    snakemake_dir : path
        Snakemake's state folder in the working directory.
    unlocking : bool
        The process is ``snakemake --unlock``: the user says no other run is alive, so the notes of other machines'
        processes (which this machine cannot check, e.g. of a run killed on another node) are removed as well.

    Returns
    -------
    bool
        True if lock files of a run that ended without removing them were removed. False if there were none,
        another process of this workflow is alive in the folder, or the file system offers no ``flock`` (then
        Snakemake's own rules apply: ``snakemake --unlock`` after a killed run).
    """
    import fcntl

    global _held
    if _held is not None:
        return False
    state = Path(snakemake_dir)
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "lungtrial.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another process of the workflow is alive here: its locks are its own
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            os.close(fd)
            return False
        _held = fd
        _note(state / "lungtrial.holders")
        return False
    except OSError:  # no flock on this file system
        os.close(fd)
        return False
    # always: leave this process's note (a run on another machine must see it) and remove dead ones of this machine
    if unlocking:
        _forget_other_machines(state / "lungtrial.holders")
    others = _others_alive(state / "lungtrial.holders")
    locks = state / "locks"
    stale = locks.is_dir() and any(locks.iterdir()) and not others
    if stale:
        shutil.rmtree(locks, ignore_errors=True)
    fcntl.flock(fd, fcntl.LOCK_SH)  # from now on other processes may start beside this one
    _held = fd
    return stale


def _note(holders: Path) -> None:
    """Leave this process's note in ``holders`` (removed when the process ends normally)."""
    holders.mkdir(parents=True, exist_ok=True)
    me = holders / f"{socket.gethostname()}.{os.getpid()}"
    me.touch()
    atexit.register(lambda: me.unlink(missing_ok=True))


def _others_alive(holders: Path) -> bool:
    """Whether a note in ``holders`` may belong to a live process (another machine's, or a live pid here); notes
    of dead processes of this machine are removed. Leaves this process's own note."""
    host = socket.gethostname()
    alive = False
    if holders.is_dir():
        for note in holders.iterdir():
            name, _, pid = note.name.rpartition(".")
            if name != host or not pid.isdigit():
                alive = True
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                note.unlink(missing_ok=True)
            except PermissionError:  # another user's live process
                alive = True
            else:
                alive = alive or int(pid) != os.getpid()
    _note(holders)
    return alive


def _forget_other_machines(holders: Path) -> None:
    """Remove the notes of other machines' processes (``snakemake --unlock``: the user vouches none is alive)."""
    host = socket.gethostname()
    if holders.is_dir():
        for note in holders.iterdir():
            if note.name.rpartition(".")[0] != host:
                note.unlink(missing_ok=True)
