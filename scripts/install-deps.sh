#!/bin/sh
# Install every Debian package that building, testing and running Postmesh needs.
# Idempotent: does nothing (and needs no network) when everything is present.
set -eu

PACKAGES="build-essential pkg-config
libzmq3-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev lmdb-utils
libldns-dev ldnsutils libconfig-dev libevent-dev libssl-dev openssl
libseccomp-dev libcmocka-dev libcrypt-dev
clang libclang-rt-14-dev llvm-14
python3 python3-pytest python3-pytest-xdist python3-zmq python3-aiosmtpd
swaks libnet-ssleay-perl libio-socket-ssl-perl postfix dnsmasq-base valgrind iproute2 procps
python3-yaml gnutls-bin postal
libopendkim-dev libspf2-dev libopendmarc-dev libidn2-dev publicsuffix
python3-dkim python3-nacl python3-milter python3-dnspython opendkim-tools rspamd
libgmime-3.0-dev isync fetchmail neomutt tmux dovecot-imapd
libunbound-dev dns-root-data nsd libcurl4-openssl-dev zlib1g-dev libjson-c-dev"
# make bench only: the Dovecot it compares POP3 retrieval with (never started as a daemon).
BENCH_PACKAGES="dovecot-pop3d"

# Unprivileged users the services drop to (privilege separation), one per service so none
# can signal or read another, and the groups they share (delivery and pop3d: the mail store,
# vmail). They come from common/services.def, the list of services the C code is built from
# (this script runs before anything is built, so it reads the file itself; the container
# image copies it next to this script, deploy/container/Containerfile, and runs --users).
# The ids are pinned, the same on a host as in the image, so a volume shared between
# containers or hosts keeps its owners. They sit in 2500-2999, above the system range
# (100-999, allocated dynamically) and far below where login users start to get crowded;
# an id taken by someone else falls back to a free one, with a warning.
# Root only; idempotent: an existing user or group is left as it is (a warning says so if its
# id is not the pinned one), an existing user only gains the group it shares.
SERVICES_DEF=${POSTMESH_SERVICES_DEF:-$(dirname "$0")/../common/services.def}
# One line per account services.def asks for, groups first: "group NAME GID", then
# "user NAME UID [GROUP]" (GROUP: the shared group it joins). --accounts prints them.
accounts() {
    [ -r "$SERVICES_DEF" ] || { echo "install-deps: cannot read $SERVICES_DEF (the list of services)" >&2; return 1; }
    awk '
        function field(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); if (s == "NULL") return ""; gsub(/"/, "", s); return s }
        function row(r,   kind, f) {
            kind = r; sub(/^[ \t]*PM_/, "", kind); sub(/\(.*/, "", kind)
            sub(/^[^(]*\(/, "", r); split(r, f, ",")
            if (kind == "GROUP") groups = groups "group " field(f[1]) " " field(f[2]) "\n"
            else if (kind == "SVC" && field(f[3]) != "")
                users = users "user " field(f[3]) " " field(f[4]) (field(f[5]) != "" ? " " field(f[5]) : "") "\n"
        }
        /^PM_(SVC|GROUP)\(/ { text = ""; open = 1 }
        open { text = text " " $0; if ($0 ~ /\)[ \t]*$/) { open = 0; row(text) } }
        END { printf "%s%s", groups, users }
    ' "$SERVICES_DEF"
}
QUIET_IDS=0 # the check before every build says nothing about ids it leaves as they are
ensure_group() { # name id
    if getent group "$1" >/dev/null 2>&1; then
        [ "$(getent group "$1" | cut -d: -f3)" = "$2" ] || [ "$QUIET_IDS" = 1 ] ||
            echo "install-deps: group $1 exists with gid $(getent group "$1" | cut -d: -f3), not the pinned $2" >&2
    elif getent group "$2" >/dev/null 2>&1; then
        echo "install-deps: gid $2 is taken: group $1 gets another" >&2
        groupadd --system "$1"
    else
        groupadd --system -K SYS_GID_MAX=2999 --gid "$2" "$1"
    fi
}
ensure_users() {
    [ "$(id -u)" = 0 ] || return 0
    list=$(accounts) || return 1
    while read -r kind name id shared; do
        case $kind in
        group) ensure_group "$name" "$id" ;;
        user) ensure_user "$name" "$id" "$shared" ;;
        esac
    done <<EOF
$list
EOF
}
ensure_user() { # name id shared-group
    u=$1 id=$2
    if id "$u" >/dev/null 2>&1; then
        [ "$(id -u "$u")" = "$id" ] || [ "$QUIET_IDS" = 1 ] ||
            echo "install-deps: user $u exists with uid $(id -u "$u"), not the pinned $id (left as it is)" >&2
    else
        ensure_group "$u" "$id"
        if getent passwd "$id" >/dev/null 2>&1; then
            echo "install-deps: uid $id is taken: user $u gets another" >&2
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --gid "$u" "$u"
        else
            # -K: a pinned id above the dynamic system range, without useradd's warning
            useradd --system -K SYS_UID_MAX=2999 -K SYS_GID_MAX=2999 --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin --gid "$u" --uid "$id" "$u"
        fi
    fi
    [ -z "$3" ] || id -nG "$u" | tr ' ' '\n' | grep -qx "$3" || usermod -a -G "$3" "$u"
}

# --accounts: print the users and groups --users would make (services.def), as root or not.
if [ "${1:-}" = "--accounts" ]; then accounts; exit; fi

# --users: only the users and groups (the container image has no use for the packages).
if [ "${1:-}" = "--users" ]; then ensure_users; exit 0; fi

# --bench: also what only the benchmark compares against.
if [ "${1:-}" = "--bench" ]; then PACKAGES="$PACKAGES $BENCH_PACKAGES"; fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then QUIET_IDS=1; ensure_users; exit 0; fi

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages:$missing (run as root to install)" >&2
    exit 1
fi

echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix is only wanted for smtp-source/smtp-sink: never configure or start its daemon.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# Keep package scripts from starting any daemon (postfix, dnsmasq) during install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1
fi
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
[ "$created_policy" = 1 ] && rm -f "$policy"
postfix stop >/dev/null 2>&1 || true
# Dovecot's and rspamd's packages start their system daemons: tests and the benchmark start
# their own instances (with their own configs), so only the system ones are stopped, by the
# pid files their packages use; a pkill by name would take a running test's instance too.
stop_system_daemon() { # name pidfile
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$1" >/dev/null 2>&1 || true; fi
    if [ -r "$2" ]; then kill "$(cat "$2")" >/dev/null 2>&1 || true; fi
}
stop_system_daemon dovecot /run/dovecot/master.pid
stop_system_daemon rspamd /run/rspamd/rspamd.pid
stop_system_daemon nsd /run/nsd/nsd.pid
ensure_users
exit 0
