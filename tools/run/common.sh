# shellcheck shell=bash
# Shared by tools/run/server.sh, tools/run/image.sh and tools/coturn/run.sh (sourced, not run):
# `key=value` arguments in the style of the deployment guide, and the WebRTC environment of the
# server (WEBRTC_ADVERTISE_IP, ICE_SERVERS, WEBRTC_PORT_RANGE, TURN_*) built from them.
# docs/deployment.md describes every argument.

# Public STUN servers used by `enable-stun=true` unless `stun-urls=` names others.
DEFAULT_STUN_URLS="stun:stun.l.google.com:19302,stun:stun1.l.google.com:19302"
DEFAULT_WEBRTC_PORTS="50000-50050"
DEFAULT_COTURN_PORT="443"
# Generated TURN REST shared secret shared by `just run-coturn` and `just run enable-coturn=true`
# when neither `coturn-secret=` nor TURN_SHARED_SECRET is given. Relative to the repository root.
COTURN_DIR=".data/coturn"
COTURN_SECRET_FILE="$COTURN_DIR/turn-secret"

die() {
    echo "error: $*" >&2
    exit 2
}

note() {
    echo "==> $*" >&2
}

# parse_args KNOWN_KEYS... -- ARGS...
# Splits ARGS into OPT[key]=value for the known lower-case keys, ENV_ASSIGN (upper-case
# NAME=value, exported for the server) and PASS (everything else, handed on unchanged).
# An unknown lower-case key=value is an error, so a typo does not silently do nothing.
# Later arguments win; empty values count as not given.
declare -A OPT=()
ENV_ASSIGN=()
PASS=()
parse_args() {
    local -A known=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        known["$1"]=1
        shift
    done
    [ $# -gt 0 ] && shift
    local arg key
    for arg in "$@"; do
        if [[ "$arg" =~ ^([a-z][a-z0-9-]*)=(.*)$ ]]; then
            key="${BASH_REMATCH[1]}"
            [ -n "${known[$key]:-}" ] || die "unknown argument '$key=…'; known: $(printf '%s ' "${!known[@]}" | tr ' ' '\n' | sort | tr '\n' ' ')"
            if [ -n "${BASH_REMATCH[2]}" ]; then
                OPT["$key"]="${BASH_REMATCH[2]}"
            fi
        elif [[ "$arg" =~ ^[A-Z_][A-Z0-9_]*= ]]; then
            ENV_ASSIGN+=("$arg")
        else
            PASS+=("$arg")
        fi
    done
}

# flag KEY: true when OPT[KEY] is true, false when unset or false, an error otherwise.
flag() {
    case "${OPT[$1]:-false}" in
        true) return 0 ;;
        false) return 1 ;;
        *) die "$1 must be true or false, not '${OPT[$1]}'" ;;
    esac
}

# The address other machines reach this one at: the source address of the default route, else the
# first address `hostname -I` lists, else loopback. Sends no packet.
outbound_ip() {
    local ip=""
    if command -v ip >/dev/null; then
        ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)
    fi
    if [ -z "$ip" ] && command -v hostname >/dev/null; then
        ip=$(hostname -I 2>/dev/null | awk '{print $1}')
    fi
    echo "${ip:-127.0.0.1}"
}

is_loopback() {
    [[ "$1" == 127.* || "$1" == "::1" || "$1" == "localhost" ]]
}

# The TURN REST shared secret: `coturn-secret=`, else TURN_SHARED_SECRET, else the generated one in
# $COTURN_SECRET_FILE (created on first use, readable by its owner only).
turn_secret() {
    if [ -n "${OPT[coturn-secret]:-}" ]; then
        echo "${OPT[coturn-secret]}"
    elif [ -n "${TURN_SHARED_SECRET:-}" ]; then
        echo "$TURN_SHARED_SECRET"
    else
        if [ ! -s "$COTURN_SECRET_FILE" ]; then
            mkdir -p "$COTURN_DIR"
            (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' >"$COTURN_SECRET_FILE")
        fi
        cat "$COTURN_SECRET_FILE"
    fi
}

# Where the secret comes from, for messages (never the secret itself).
turn_secret_origin() {
    if [ -n "${OPT[coturn-secret]:-}" ]; then
        echo "coturn-secret="
    elif [ -n "${TURN_SHARED_SECRET:-}" ]; then
        echo "TURN_SHARED_SECRET"
    else
        echo "$COTURN_SECRET_FILE"
    fi
}

# A JSON string literal.
json_str() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}

# The keys build_webrtc_env understands.
# shellcheck disable=SC2034 # used by the scripts that source this file
WEBRTC_KEYS=(webrtc-advertise-ip enable-stun stun-urls enable-coturn coturn-host coturn-port
    coturn-user coturn-secret webrtc-ports)

# build_webrtc_env ADVERTISE_DEFAULT
# Exports the server's WebRTC variables from OPT and lists their names in WEBRTC_ENV_NAMES.
# ADVERTISE_DEFAULT is the advertise IP to use when none is given and STUN is off (empty: none).
WEBRTC_ENV_NAMES=()
build_webrtc_env() {
    local advertise_default="${1:-}"
    local advertise="${OPT[webrtc-advertise-ip]:-${WEBRTC_ADVERTISE_IP:-}}"
    local ice=() url

    if [ -n "$advertise" ] && flag enable-stun; then
        die "webrtc-advertise-ip and enable-stun=true are two ways of telling browsers our address;" \
            "use one: webrtc-advertise-ip when the public address is known (NAT 1:1, Docker, load" \
            "balancer), enable-stun=true when the server should discover it."
    fi
    if [ -z "$advertise" ] && ! flag enable-stun && [ -n "$advertise_default" ]; then
        advertise="$advertise_default"
        note "advertising $advertise in ICE candidates (set webrtc-advertise-ip= to change)"
    fi
    if [ -n "$advertise" ]; then
        export WEBRTC_ADVERTISE_IP="$advertise"
        WEBRTC_ENV_NAMES+=(WEBRTC_ADVERTISE_IP)
    fi

    local ports="${OPT[webrtc-ports]:-${WEBRTC_PORT_RANGE:-$DEFAULT_WEBRTC_PORTS}}"
    if ! [[ "$ports" =~ ^([0-9]+)-([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 1 ] \
        || [ "${BASH_REMATCH[1]}" -gt "${BASH_REMATCH[2]}" ] || [ "${BASH_REMATCH[2]}" -gt 65535 ]; then
        die "webrtc-ports must be MIN-MAX with 1 <= MIN <= MAX <= 65535, not '$ports'"
    fi
    export WEBRTC_PORT_RANGE="$ports"
    WEBRTC_ENV_NAMES+=(WEBRTC_PORT_RANGE)

    if flag enable-stun; then
        local urls=()
        IFS=',' read -r -a urls <<<"${OPT[stun-urls]:-$DEFAULT_STUN_URLS}"
        for url in "${urls[@]}"; do
            [[ "$url" == stun:* || "$url" == stuns:* ]] || die "stun-urls: '$url' is not a stun: URL"
            ice+=("{\"urls\":$(json_str "$url")}")
        done
    fi

    if flag enable-coturn; then
        local host="${OPT[coturn-host]:-}"
        if [ -z "$host" ]; then
            if [ -n "$advertise" ] && ! is_loopback "$advertise"; then
                host="$advertise"
            else
                host=$(outbound_ip)
            fi
        fi
        local port="${OPT[coturn-port]:-$DEFAULT_COTURN_PORT}"
        [[ "$port" =~ ^[0-9]+$ ]] || die "coturn-port must be a number, not '$port'"
        local turn_url="turn:$host:$port?transport=tcp"
        if [ -n "${OPT[coturn-user]:-}" ]; then
            # Static test credentials, as `just run-coturn coturn-user=USER:PASSWORD` accepts them.
            local user="${OPT[coturn-user]%%:*}"
            local pass="${OPT[coturn-user]#*:}"
            [[ "${OPT[coturn-user]}" == *:* && -n "$user" && -n "$pass" ]] \
                || die "coturn-user must be USER:PASSWORD"
            ice+=("{\"urls\":$(json_str "$turn_url"),\"username\":$(json_str "$user"),\"credential\":$(json_str "$pass")}")
        else
            # TURN REST API: the server hands out credentials that expire (TURN_CREDENTIAL_TTL).
            TURN_SECRET_ORIGIN=$(turn_secret_origin)
            TURN_SHARED_SECRET=$(turn_secret)
            export TURN_SHARED_SECRET
            export TURN_URLS="$turn_url"
            WEBRTC_ENV_NAMES+=(TURN_SHARED_SECRET TURN_URLS)
            if [ -n "${TURN_CREDENTIAL_TTL:-}" ]; then
                WEBRTC_ENV_NAMES+=(TURN_CREDENTIAL_TTL)
            fi
        fi
    elif [ -n "${OPT[coturn-user]:-}${OPT[coturn-host]:-}${OPT[coturn-secret]:-}" ]; then
        die "coturn-user, coturn-host and coturn-secret only apply with enable-coturn=true"
    fi

    if [ ${#ice[@]} -gt 0 ]; then
        if [ -n "${ICE_SERVERS:-}" ]; then
            note "ICE_SERVERS from the environment is replaced by the one built from the arguments"
        fi
        ICE_SERVERS="[$(IFS=,; echo "${ice[*]}")]"
        export ICE_SERVERS
        WEBRTC_ENV_NAMES+=(ICE_SERVERS)
    elif [ -n "${ICE_SERVERS:-}" ]; then
        WEBRTC_ENV_NAMES+=(ICE_SERVERS)
    fi
}

# The value of an environment variable as shown in messages: secrets and passwords masked.
shown_value() {
    case "$1" in
        TURN_SHARED_SECRET) echo "<secret from ${TURN_SECRET_ORIGIN:-TURN_SHARED_SECRET}>" ;;
        ICE_SERVERS) echo "${!1}" | sed -E 's/"credential":"([^"\\]|\\.)*"/"credential":"***"/g' ;;
        *) echo "${!1}" ;;
    esac
}

# A word as a shell would need it written: bare when safe, else in single quotes.
sh_quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_./:,=@%+-]*$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# NAME=value as a shell would need it written.
sh_assignment() {
    printf '%s=%s' "${1%%=*}" "$(sh_quote "${1#*=}")"
}
