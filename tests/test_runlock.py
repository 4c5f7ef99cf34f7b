"""lungtrial.runlock: Snakemake's lock files are removed only when no other process of the workflow is alive in the
folder, on this machine or, by its note, on another; each process leaves its note while it lives.

Every case runs ``release_stale_locks`` in its own Python process: the lock it takes is held until that process ends.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HOLD = """
import sys, time
from lungtrial.runlock import release_stale_locks
print(release_stale_locks(sys.argv[1]), flush=True)
time.sleep(float(sys.argv[2]))
"""


def stale_locks(state: Path) -> None:
    (state / "locks").mkdir(parents=True, exist_ok=True)
    (state / "locks/0.input.lock").write_text("results/imaging/qc.csv\n")


def test_stale_snakemake_locks_are_removed_only_when_no_run_is_alive(tmp_path):
    state = tmp_path / ".snakemake"
    stale_locks(state)
    hold = [sys.executable, "-c", HOLD, str(state)]
    alive = subprocess.Popen([*hold, "30"], stdout=subprocess.PIPE, text=True)  # a run still going
    try:
        assert alive.stdout.readline().strip() == "True"  # nobody else was alive: the locks were stale
        stale_locks(state)  # the live run's own locks
        beside = subprocess.run([*hold, "0"], capture_output=True, text=True, check=True)
        assert beside.stdout.strip() == "False" and (state / "locks/0.input.lock").exists()
    finally:
        alive.kill()  # SIGKILL: the kernel drops its lock
        alive.wait()
    after = subprocess.run([*hold, "0"], capture_output=True, text=True, check=True)
    assert after.stdout.strip() == "True" and not (state / "locks").exists()


def test_locks_are_kept_while_a_run_on_another_machine_may_be_alive(tmp_path):
    """Where flock is local to each machine, a note left by a run on another host keeps the locks."""
    state = tmp_path / ".snakemake"
    stale_locks(state)
    (state / "lungtrial.holders").mkdir(parents=True)
    (state / "lungtrial.holders/login-node-2.4242").touch()
    hold = [sys.executable, "-c", HOLD, str(state), "0"]
    assert subprocess.run(hold, capture_output=True, text=True, check=True).stdout.strip() == "False"
    assert (state / "locks/0.input.lock").exists()
    (state / "lungtrial.holders/login-node-2.4242").unlink()  # that run ended
    assert subprocess.run(hold, capture_output=True, text=True, check=True).stdout.strip() == "True"
    assert not (state / "locks").exists()
    assert not any((state / "lungtrial.holders").iterdir())  # each process removed its own note


def test_every_run_leaves_its_note_and_clears_dead_ones(tmp_path):
    """Without locks to clear too: a run on another machine (flock local to each) must see this run's note, and the
    note of a process of this machine that was killed goes."""
    import socket

    state = tmp_path / ".snakemake"
    holders = state / "lungtrial.holders"
    holders.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (holders / f"{socket.gethostname()}.{dead.stdout.strip()}").touch()  # a killed run's note
    probe = (
        "import os, sys; from pathlib import Path; from lungtrial.runlock import release_stale_locks; "
        "release_stale_locks(sys.argv[1]); print(sorted(p.name for p in Path(sys.argv[1], 'lungtrial.holders').iterdir()), os.getpid())"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(state)], capture_output=True, text=True, check=True).stdout
    names, pid = out.rsplit(" ", 1)
    assert names == str([f"{socket.gethostname()}.{pid.strip()}"])  # its own note only, while it runs
    assert not any(holders.iterdir())  # and removed when it ended


def test_unlock_forgets_the_notes_of_other_machines(tmp_path):
    """A run killed on another node leaves a note this machine cannot check; `snakemake --unlock` clears it."""
    state = tmp_path / ".snakemake"
    stale_locks(state)
    (state / "lungtrial.holders").mkdir(parents=True)
    (state / "lungtrial.holders/login-node-2.4242").touch()
    probe = "import sys; from lungtrial.runlock import release_stale_locks as r; print(r(sys.argv[1], unlocking=True))"
    out = subprocess.run([sys.executable, "-c", probe, str(state)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True" and not (state / "locks").exists()
    assert not any((state / "lungtrial.holders").iterdir())


def test_nothing_to_remove_and_a_second_call_of_the_same_process_give_false(tmp_path):
    """Without lock files the call removes nothing (False); a process takes its lock once, so a second call of it
    removes nothing either, even lock files that appeared since (they are its own run's)."""
    state = tmp_path / ".snakemake"  # created by the call
    probe = (
        "import sys; from pathlib import Path; from lungtrial.runlock import release_stale_locks as r; "
        "first = r(sys.argv[1]); (Path(sys.argv[1]) / 'locks').mkdir(); (Path(sys.argv[1]) / 'locks/0.input.lock')"
        ".touch(); print(first, r(sys.argv[1]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(state)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert (state / "lungtrial.lock").exists() and (state / "locks/0.input.lock").exists()
