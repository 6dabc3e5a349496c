#!/bin/sh
# Build the Debian 12 base image every Postmesh container starts from, without a registry:
# debootstrap (minbase) from the apt mirror this machine already uses, then `podman import`.
# The image is cached: a second run with the image present does nothing (--force rebuilds).
# The .deb files debootstrap fetches are kept in a cache directory (CACHE, seeded by the host's
# own apt cache) so a rebuild needs almost no network.
#
#   scripts/container-base.sh [--force]      env: IMAGE, ENGINE (podman|docker), CACHE, MIRROR
#
# Docker works the same way (ENGINE=docker: `docker import`); with a registry at hand,
# `--build-arg BASE=debian:bookworm-slim` on the Containerfile skips this script altogether.
set -eu

IMAGE=${IMAGE:-localhost/postmesh-base:bookworm}
ENGINE=${ENGINE:-podman}
CACHE=${CACHE:-/var/cache/postmesh-container/debs}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

if [ "$FORCE" = 0 ] && $ENGINE image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "container-base: $IMAGE present (--force to rebuild)" >&2
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "container-base: debootstrap needs root" >&2; exit 1; }

# The mirror: the first Debian URI of this machine's apt sources (deb822 or one-line form).
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        sed -n -e 's/^URIs: *\([^ ]*\/debian\)\/* *$/\1/p' \
               -e 's/^deb  *\(\[[^]]*\] *\)\{0,1\}\([^ ]*\/debian\)\/* .*/\2/p' | head -n 1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

mkdir -p "$CACHE"
# Seed the cache with what the host already downloaded (hard links: no extra space).
if [ -d /var/cache/apt/archives ]; then
    cp -nl /var/cache/apt/archives/*.deb "$CACHE"/ 2>/dev/null || true
fi

root=$(mktemp -d /var/tmp/postmesh-base.XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM
echo "container-base: debootstrap bookworm from $MIRROR into $root" >&2
debootstrap --variant=minbase --cache-dir="$CACHE" bookworm "$root" "$MIRROR" >"$root.log" 2>&1 ||
    { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Apt inside the image: the same mirror plus updates and security; no recommends, no docs,
# no package lists or .debs left in the layer.
security=$(echo "$MIRROR" | sed 's,/debian$,/debian-security,')
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
EOF
cat >"$root/etc/apt/apt.conf.d/90postmesh" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/90postmesh-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
# Daemons never start from package scripts inside an image build.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log
: >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -c . |
    $ENGINE import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
echo "container-base: built $IMAGE" >&2
