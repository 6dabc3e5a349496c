#!/bin/sh
# Install every Debian package that building, testing and running Postmesh needs.
# Idempotent: does nothing (and needs no network) when everything is present.
set -eu

PACKAGES="build-essential pkg-config
libzmq3-dev libprotobuf-c-dev protobuf-c-compiler liblmdb-dev lmdb-utils
libldns-dev ldnsutils libconfig-dev libevent-dev libssl-dev openssl
libseccomp-dev libcmocka-dev libcrypt-dev
clang libclang-rt-14-dev llvm-14
python3 python3-pytest python3-zmq python3-aiosmtpd
swaks libnet-ssleay-perl libio-socket-ssl-perl postfix dnsmasq-base valgrind iproute2 procps
python3-yaml gnutls-bin postal"
# make bench only: the Dovecot it compares POP3 retrieval with (never started as a daemon).
BENCH_PACKAGES="dovecot-pop3d"

# Unprivileged users the services drop to (privilege separation), one per service so none
# can signal or read another (common/runas.c is the table); delivery and pop3d share the
# mail store through the group vmail. The ids are pinned, the same here as in the container
# image (deploy/container/Containerfile runs this with --users), so a volume shared between
# containers or hosts keeps its owners. They sit in 2500-2508, above the system range
# (100-999, allocated dynamically) and far below where login users start to get crowded;
# an id taken by someone else falls back to a free one, with a warning.
# Root only; idempotent: an existing user or group is left as it is (a warning says so if its
# id is not the pinned one), an existing store user only gains the vmail group.
SERVICE_USERS="postmesh-queue:2501 postmesh-resolver:2502 postmesh-bouncer:2503 postmesh-delivery:2504
postmesh-mta:2505 postmesh-smtpd:2506 postmesh-pop3d:2507 postmesh-auth:2508"
STORE_GROUP="vmail:2500"
STORE_USERS="postmesh-delivery postmesh-pop3d"
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
    ensure_group "${STORE_GROUP%%:*}" "${STORE_GROUP##*:}"
    for entry in $SERVICE_USERS; do
        u=${entry%%:*} id=${entry##*:}
        if id "$u" >/dev/null 2>&1; then
            [ "$(id -u "$u")" = "$id" ] || [ "$QUIET_IDS" = 1 ] ||
                echo "install-deps: user $u exists with uid $(id -u "$u"), not the pinned $id (left as it is)" >&2
            continue
        fi
        ensure_group "$u" "$id"
        if getent passwd "$id" >/dev/null 2>&1; then
            echo "install-deps: uid $id is taken: user $u gets another" >&2
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --gid "$u" "$u"
        else
            # -K: a pinned id above the dynamic system range, without useradd's warning
            useradd --system -K SYS_UID_MAX=2999 -K SYS_GID_MAX=2999 --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin --gid "$u" --uid "$id" "$u"
        fi
    done
    for u in $STORE_USERS; do
        id -nG "$u" | tr ' ' '\n' | grep -qx vmail || usermod -a -G vmail "$u"
    done
}

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
# Dovecot's package enables its daemon: the benchmark starts its own instance.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now dovecot >/dev/null 2>&1 || true; fi
pkill -x dovecot >/dev/null 2>&1 || true
ensure_users
exit 0
