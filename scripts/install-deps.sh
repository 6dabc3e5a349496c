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
swaks libnet-ssleay-perl libio-socket-ssl-perl postfix dnsmasq-base valgrind iproute2 procps"

# Unprivileged users the services drop to (privilege separation), one per service so none
# can signal or read another (common/runas.c is the table); delivery and pop3d share the
# mail store through the group vmail. Root only; idempotent: an existing user or group is
# left as it is, an existing store user only gains the vmail group.
SERVICE_USERS="postmesh-queue postmesh-resolver postmesh-bouncer postmesh-delivery postmesh-mta
postmesh-smtpd postmesh-pop3d postmesh-auth"
STORE_USERS="postmesh-delivery postmesh-pop3d"
ensure_users() {
    [ "$(id -u)" = 0 ] || return 0
    getent group vmail >/dev/null 2>&1 || groupadd --system vmail
    for u in $SERVICE_USERS; do
        id "$u" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --user-group "$u"
    done
    for u in $STORE_USERS; do
        id -nG "$u" | tr ' ' '\n' | grep -qx vmail || usermod -a -G vmail "$u"
    done
}

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then ensure_users; exit 0; fi

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
ensure_users
exit 0
