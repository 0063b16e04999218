#!/usr/bin/env bash
# `just run-coturn [key=value...]`: a local coturn TURN server in the foreground (Ctrl-C stops it),
# TCP only, for browsers whose network blocks UDP. docs/deployment.md explains when to use it.
#
#   coturn-port=PORT            TCP port to listen on (443)
#   coturn-user=USER:PASSWORD   static credentials, for testing only
#   coturn-secret=SECRET        TURN REST shared secret (use-auth-secret); the default when no
#                               coturn-user is given, taken from TURN_SHARED_SECRET or else from
#                               the generated .data/coturn/turn-secret that `just run
#                               enable-coturn=true` uses too
#   coturn-realm=REALM          realm (visprompt)
#   coturn-listen-ip=IP         listen on this address only (default: every address)
#   coturn-external-ip=IP[/IP]  public[/private] address when coturn itself is behind NAT
#   coturn-allow-loopback=true  allow relaying to 127.0.0.1 (server and browser on one machine,
#                               candidates on loopback); off by default
#   dry-run=true                print the configuration, start nothing
#
# The configuration (secret included) is written to .data/coturn/turnserver.conf, readable by its
# owner only, so the secret does not show in the process list; coturn logs to
# .data/coturn/turnserver.log instead of the terminal.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tools/run/common.sh
source tools/run/common.sh

parse_args coturn-port coturn-user coturn-secret coturn-realm coturn-listen-ip coturn-external-ip \
    coturn-allow-loopback dry-run -- "$@"
if [ ${#PASS[@]} -gt 0 ] || [ ${#ENV_ASSIGN[@]} -gt 0 ]; then
    die "unexpected arguments: ${PASS[*]-} ${ENV_ASSIGN[*]-} (expected key=value, see tools/coturn/run.sh)"
fi

port="${OPT[coturn-port]:-$DEFAULT_COTURN_PORT}"
if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "coturn-port must be a port number, not '$port'"
fi
realm="${OPT[coturn-realm]:-visprompt}"
conf="$COTURN_DIR/turnserver.conf"
log="$COTURN_DIR/turnserver.log"

if [ -n "${OPT[coturn-user]:-}" ] && [ -n "${OPT[coturn-secret]:-}" ]; then
    die "coturn-user (static credentials) and coturn-secret (TURN REST) exclude each other"
fi

lines=(
    "listening-port=$port"
    "no-udp"
    "no-tls"
    "no-dtls"
    "no-cli"
    "fingerprint"
    "realm=$realm"
    "no-multicast-peers"
    "no-software-attribute"
    "no-rfc5780"
    "log-file=$PWD/$log"
    "simple-log"
    "no-stdout-log"
    "pidfile=$PWD/$COTURN_DIR/turnserver.pid"
)
if [ -n "${OPT[coturn-user]:-}" ]; then
    [[ "${OPT[coturn-user]}" =~ ^[^:]+:.+$ ]] || die "coturn-user must be USER:PASSWORD"
    lines+=("lt-cred-mech" "user=${OPT[coturn-user]}")
    auth="static test credentials for user '${OPT[coturn-user]%%:*}'"
else
    origin=$(turn_secret_origin)
    lines+=("use-auth-secret" "static-auth-secret=$(turn_secret)")
    auth="TURN REST credentials (shared secret from $origin)"
fi
[ -n "${OPT[coturn-listen-ip]:-}" ] && lines+=("listening-ip=${OPT[coturn-listen-ip]}")
[ -n "${OPT[coturn-external-ip]:-}" ] && lines+=("external-ip=${OPT[coturn-external-ip]}")
flag coturn-allow-loopback && lines+=("allow-loopback-peers")
# Drop root once the port is bound, when the Debian package's system user exists.
if [ "$(id -u)" -eq 0 ] && id turnserver >/dev/null 2>&1; then
    lines+=("proc-user=turnserver" "proc-group=turnserver")
fi

listen="${OPT[coturn-listen-ip]:-0.0.0.0}:$port"
if flag dry-run; then
    printf '%s\n' "${lines[@]}" | sed 's/^static-auth-secret=.*/static-auth-secret=<secret>/; s/^user=\([^:]*\):.*/user=\1:***/'
    note "coturn would listen on TCP $listen with $auth"
    exit 0
fi

if ! command -v turnserver >/dev/null; then
    note "coturn is not installed; installing it (tools/ci/install-coturn.sh)"
    [ "$(id -u)" -eq 0 ] || die "installing coturn needs root: sudo tools/ci/install-coturn.sh"
    bash tools/ci/install-coturn.sh
fi
if [ "$port" -lt 1024 ] && [ "$(id -u)" -ne 0 ]; then
    note "port $port is privileged: run as root, or choose coturn-port=3478 (or any port >= 1024)"
fi

# coturn binds with SO_REUSEPORT and would share the port with another server instead of failing.
if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "TCP port $port is already in use (another coturn? \`ss -ltnp 'sport = :$port'\` shows by whom); choose another coturn-port="
fi

mkdir -p "$COTURN_DIR"
(umask 077 && printf '%s\n' "${lines[@]}" >"$conf")
: >"$log"
if [ "$(id -u)" -eq 0 ] && id turnserver >/dev/null 2>&1; then
    # coturn opens its log and pid file again after dropping root.
    chown turnserver:turnserver "$log"
    rm -f "$COTURN_DIR/turnserver.pid"
    chmod 0755 "$COTURN_DIR"
fi

# Its stderr too: where the kernel has no SCTP, each listener complains there.
turnserver -c "$conf" 2>>"$log" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM HUP

# Report readiness (or the reason for failing) instead of coturn's start-up log.
ready=false
for _ in $(seq 1 50); do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "error: coturn stopped at start-up; the end of $log:" >&2
        tail -n 15 "$log" >&2
        wait "$pid" || exit $?
        exit 1
    fi
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
        note "coturn listening on TCP $listen (realm $realm, $auth); log: $log; Ctrl-C stops it"
        ready=true
        break
    fi
    sleep 0.1
done
if [ "$ready" = false ]; then
    echo "warning: coturn runs but does not listen on TCP port $port; errors from $log:" >&2
    grep -i -E 'error|cannot|fail' "$log" | tail -n 5 >&2 || true
fi

status=0
wait "$pid" || status=$?
# A wait interrupted by the trap returns early: wait for coturn to finish shutting down.
if kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || status=$?
fi
exit "$status"
