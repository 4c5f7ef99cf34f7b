#!/usr/bin/env bash
# Stand up a throw-away single-node SLURM cluster on this machine (Debian's munge + slurmctld + slurmd), run the
# reduced demo workflow through Snakemake's SLURM executor with profiles/slurm, run the same config locally,
# and check that both runs produce the same result tables.
#
#   bash tests/slurm/run_demo_on_slurm.sh            # full check (a few minutes)
#   bash tests/slurm/run_demo_on_slurm.sh --smoke    # cluster up, one sbatch job, down (seconds)
#
# Needs root and Debian (apt-get installs munge, slurmctld, slurmd, slurm-client when missing; the daemons run as
# root). Apart from that install, nothing under /etc is used: every daemon gets its own key, socket, ports,
# config, pid files and state directories under one temp dir, and the trap stops exactly those daemons (by
# their pid files) and removes the temp dir (KEEP_TMP=1 keeps it). Both runs use a snapshot of the code taken
# at the start. Takes about 3 minutes on 2 cores (SLURM run ~105 s, local run ~40 s). Results are compared by
# tests/slurm/compare_runs.py.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PY:-$REPO/.venv/bin/python}"
SNAKEMAKE="${SNAKEMAKE:-$REPO/.venv/bin/snakemake}"
MODE="${1:-full}"
export PATH="$PATH:/usr/sbin:/sbin"   # munged, mungekey, slurmctld, slurmd

log() { printf '[slurm-demo %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -q >/dev/null
        # Keep the packages' own services (system munged, slurmctld, slurmd) from starting on install.
        local policy=/usr/sbin/policy-rc.d made_policy=0
        if [[ ! -e "$policy" ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod +x "$policy"
            made_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
        if ((made_policy)); then rm -f "$policy"; fi
    fi
    "$PY" -c "import snakemake_executor_plugin_slurm" 2>/dev/null ||
        "$PY" -m pip install -q "snakemake-executor-plugin-slurm==2.8.0"
}

TMP=""
CODE=""
cleanup() {
    local rc=$?
    set +e
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        if [[ $rc -ne 0 ]]; then
            for f in "$TMP"/log/slurmctld.log "$TMP"/log/slurmd.log; do
                [[ -f "$f" ]] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }
            done
        fi
        for pidfile in "$TMP"/run/slurmd.pid "$TMP"/run/slurmctld.pid "$TMP"/munge/munged.pid; do
            [[ -f "$pidfile" ]] || continue
            local pid
            pid="$(cat "$pidfile")"
            kill "$pid" 2>/dev/null || continue
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null
        done
        if [[ "${KEEP_TMP:-0}" == 1 ]]; then
            log "kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_cluster() {
    mkdir -p "$TMP"/{munge,state,log,run} "$TMP/spool/slurmd-$(hostname -s)"
    chmod 700 "$TMP"/munge
    mungekey -c -k "$TMP"/munge/munge.key
    munged --force --key-file="$TMP"/munge/munge.key --socket="$TMP"/munge/munge.socket \
        --pid-file="$TMP"/munge/munged.pid --log-file="$TMP"/munge/munged.log \
        --seed-file="$TMP"/munge/munged.seed 2>/dev/null

    local node cpus mem ctld_port d_port
    node="$(hostname -s)"
    cpus="$(nproc)"
    # Leave a quarter of the machine's memory (and at least 1 GB) to everything outside the cluster.
    mem="$(awk '/MemTotal/ {m = int($2 / 1024); r = int(m * 3 / 4); if (m - r < 1024) r = m - 1024; print r}' \
        /proc/meminfo)"
    ctld_port="$(free_port)"
    d_port="$(free_port)"
    while [[ "$d_port" == "$ctld_port" ]]; do d_port="$(free_port)"; done

    export SLURM_CONF="$TMP/slurm.conf"
    cat >"$SLURM_CONF" <<EOF
ClusterName=lungtrial-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$TMP/munge/munge.socket
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool/slurmd-%n
SlurmctldPidFile=$TMP/run/slurmctld.pid
SlurmdPidFile=$TMP/run/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
PlugStackConfig=$TMP/plugstack.conf
MailProg=/bin/true
SwitchType=switch/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=3600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$TMP/plugstack.conf"
    # Inside a job, Snakemake's jobstep plugin drops every SLURM_* variable before it calls srun, SLURM_CONF
    # included; a real cluster's srun then reads /etc/slurm. Ours finds this cluster through a wrapper on PATH.
    mkdir -p "$TMP/bin"
    printf '#!/bin/sh\nSLURM_CONF=%q exec %q "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$TMP/bin/srun"
    chmod +x "$TMP/bin/srun"
    export PATH="$TMP/bin:$PATH"
    log "slurmctld on port $ctld_port, slurmd on $d_port: node $node, $cpus CPUs, ${mem} MB"
    slurmctld -i
    slurmd -N "$node"
    for _ in $(seq 60); do
        if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
            return 0
        fi
        sleep 1
    done
    sinfo -N >&2 || true
    log "node did not become idle"
    return 1
}

smoke_job() {
    local out="$TMP/smoke.out"
    sbatch --wait --quiet --mem=100 --time=1 --output="$out" --wrap 'echo "hello from $SLURM_JOB_ID on $(hostname -s)"'
    grep -q '^hello from' "$out"
    log "sbatch job ran: $(cat "$out")"
}

# Both runs use one snapshot of the workflow and library, taken now: edits to the checkout while the test runs
# cannot make the two runs differ.
snapshot_code() {
    mkdir -p "$TMP/code"
    cp -r "$REPO/Snakefile" "$REPO/workflow" "$REPO/src" "$REPO/resources" "$REPO/envs" "$REPO/profiles" "$TMP/code/"
    export PYTHONPATH="$TMP/code/src${PYTHONPATH:+:$PYTHONPATH}"
    CODE="$TMP/code"
}

# The test config (2 subjects per arm, tiny scans) with two timepoints: the change maps of its four pairs, and the
# statistics of their endpoints, are compared too (the registration gives the same result on any number of threads,
# docs/registration.md).
write_config() {
    "$PY" - "$REPO/.test/config/config.yaml" "$TMP/config.yaml" <<'EOF'
import sys

import yaml

with open(sys.argv[1]) as fh:
    config = yaml.safe_load(fh)
config["demo"] = True
config["demo_options"]["timepoints"] = [0, 7]
with open(sys.argv[2], "w") as fh:
    yaml.safe_dump(config, fh, sort_keys=False)
EOF
}

# Each run has its own working directory (results/, logs/, .snakemake/); the workflow finds its shipped
# resources/ by itself.
run_workflow() {
    local wd="$1"
    shift
    mkdir -p "$wd"
    # A hung run (say, a job SLURM can never schedule) fails instead of waiting for ever.
    timeout --kill-after=60 "${RUN_TIMEOUT:-1800}" \
        "$SNAKEMAKE" --snakefile "$CODE/Snakefile" --directory "$wd" --configfile "$TMP/config.yaml" "$@"
}

main() {
    install_packages
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/lungtrial-slurm.XXXXXX")"
    start_cluster
    smoke_job
    [[ "$MODE" == "--smoke" ]] && return 0

    snapshot_code
    write_config
    local t0 t1 t2
    t0="$(date +%s)"
    log "workflow through --executor slurm"
    (cd "$TMP" && run_workflow "$TMP/on_slurm" --workflow-profile "$CODE/profiles/slurm" \
        --slurm-init-seconds-before-status-checks 2 --slurm-status-command squeue --slurm-no-account \
        --slurm-logdir "$TMP/slurm_logs")
    t1="$(date +%s)"
    log "same config locally"
    (cd "$TMP" && run_workflow "$TMP/local" --workflow-profile "$CODE/profiles/local" --cores "$(nproc)")
    t2="$(date +%s)"
    "$PY" "$REPO/tests/slurm/compare_runs.py" "$TMP/on_slurm/results" "$TMP/local/results"
    log "wall time: slurm run $((t1 - t0)) s, local run $((t2 - t1)) s"
}

main
