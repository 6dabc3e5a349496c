#!/bin/sh
# One-shot setup of the compose stack (the `setup` service of deploy/compose.yaml), run in
# the postmesh image. Idempotent: what exists is kept.
#  - `postmesh keys init` makes every bus keypair once, in keys-all (only this container
#    mounts it); each role's volume /keys/<role> then gets its own secret key (root, 0600:
#    a service reads it as root before it drops) and only the public keys it needs
#    (`postmesh keys where`).
#  - a self-signed TLS pair for 465/995 when none is there (replace with a real one);
#  - an empty users file (root, 0640) for `postmesh user add`.
set -eu
CONF=${POSTMESH_CONFIG:-/etc/postmesh/postmesh.conf}
ALL=/etc/postmesh/keys

postmesh -c "$CONF" keys init >/dev/null

# role: the public keys it needs besides its own pair (services/cli/keys_cmd.c needs()).
copy_role() { # role pub...
    role=$1
    shift
    dir=/keys/$role
    install -d -m 0755 -o root -g root "$dir"
    install -m 0600 -o root -g root "$ALL/$role.key" "$dir/$role.key.tmp"
    mv -f "$dir/$role.key.tmp" "$dir/$role.key"
    install -m 0644 -o root -g root "$ALL/$role.pub" "$dir/$role.pub"
    for p in "$@"; do
        install -m 0644 -o root -g root "$ALL/$p.pub" "$dir/$p.pub"
    done
    # Nothing else: a secret key of another role never stays here.
    for f in "$dir"/*; do
        name=$(basename "$f")
        keep=0
        for k in "$role.key" "$role.pub" $(for p in "$@"; do echo "$p.pub"; done); do
            [ "$name" = "$k" ] && keep=1
        done
        [ "$keep" = 1 ] || rm -f "$f"
    done
}
copy_role queue smtpd mta delivery bouncer cli
copy_role resolver smtpd mta
copy_role smtpd queue resolver
copy_role mta queue resolver
copy_role delivery queue
copy_role bouncer queue
copy_role cli queue

tls=/etc/postmesh/tls
if [ ! -s "$tls/cert.pem" ] || [ ! -s "$tls/key.pem" ]; then
    host=$(sed -n 's/^hostname *= *"\([^"]*\)".*/\1/p' "$CONF" | head -n 1)
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=${host:-localhost}" \
        -addext "subjectAltName=DNS:${host:-localhost}" \
        -keyout "$tls/key.pem.tmp" -out "$tls/cert.pem.tmp" 2>/dev/null
    chmod 0600 "$tls/key.pem.tmp"
    chmod 0644 "$tls/cert.pem.tmp"
    mv -f "$tls/key.pem.tmp" "$tls/key.pem"
    mv -f "$tls/cert.pem.tmp" "$tls/cert.pem"
fi

users=/var/lib/postmesh/accounts/users
if [ ! -e "$users" ]; then
    install -m 0640 -o root -g root /dev/null "$users"
fi
echo "setup: keys, TLS and users file ready"
