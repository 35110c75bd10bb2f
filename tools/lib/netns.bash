# Shared by the scripts that build network namespace topologies (make-pcaps, tap-node): starting with an
# empty signal mask, creating namespaces, and removing every namespace and process a run created.
# The sourcing script keeps what it created in NAMESPACES and PIDS.

NAMESPACES=()   # namespaces this run created and has not deleted yet
PIDS=()         # background processes this run started

# A caller may have started the script with signals blocked (a thread pool's mask survives exec); then neither
# its children nor the script could be stopped cleanly. Start over once with an empty signal mask.
# Usage: unblock_signals "$0" "$@"
unblock_signals() {
    if [[ -z "${SVP_SIGNALS_UNBLOCKED:-}" ]] && grep -q '^SigBlk:.*[1-9a-f]' /proc/$$/status; then
        export SVP_SIGNALS_UNBLOCKED=1
        exec python3 -c 'import os, signal, sys
signal.pthread_sigmask(signal.SIG_SETMASK, [])
os.execv(sys.argv[1], sys.argv[1:])' "$@"
    fi
}

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# new_ns NAME: a namespace with loopback up and no IPv6 at all (set before any link exists, so no ND/MLD/RA noise)
new_ns() {
    ip netns add "$1"
    NAMESPACES+=("$1")
    in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1
    ip -n "$1" link set lo up
}

# kill_pids PID...: SIGTERM, up to a second's grace, then SIGKILL
kill_pids() {
    local pid alive=()
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null && alive+=("$pid")
    done
    for pid in "${alive[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# delete_namespaces NS...: kills what still runs inside each (it was started by us), then deletes it
delete_namespaces() {
    local ns pid
    for ns in "$@"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
}

# teardown: every process in PIDS, then every namespace in NAMESPACES
teardown() {
    [[ ${#PIDS[@]} -eq 0 ]] || kill_pids "${PIDS[@]}"
    PIDS=()
    delete_namespaces "${NAMESPACES[@]}"
    NAMESPACES=()
}

# spawn LOG COMMAND...: runs COMMAND in the background with stdin from /dev/null, stdout and stderr to LOG, and
# no other descriptor of ours: a daemon that outlives the script must not hold its caller's pipes or sockets open
# (a caller waiting for them to close would wait for the daemon). $! is COMMAND's pid.
spawn() {
    local log=$1
    shift
    (
        for fd in /proc/"$BASHPID"/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec "$@"
    ) </dev/null >"$log" 2>&1 &
}
