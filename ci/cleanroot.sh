#!/usr/bin/env bash
# Run a command in a fresh Debian 12 root made by debootstrap, so that what
# the project needs must come from ci/install-deps.sh and nothing installed
# by hand on this machine can hide a missing package.
#
#   ci/cleanroot.sh CMD [ARG...]
#
# The root is a minbase bookworm: no compiler, no make, no protobuf. Inside
# it the checkout is /src (a bind mount, so bin/ and build/ land here), Go is
# the host's /usr/local/go (the machine image provides it, as on a fresh
# machine) and the Go module cache is shared with the host. /proc, /sys and
# /dev are the host's: the tests create cgroups, loop devices and namespaces.
# The root becomes / through pivot_root in a private mount namespace rather
# than chroot, because runc's libcontainer pivots into each container's root
# and the kernel refuses pivot_root when the current root is a chroot.
#
# Environment: CLEANROOT_DIR (where the root is made; default a new
# directory under /var/tmp, removed on exit), DEBIAN_MIRROR.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: ci/cleanroot.sh CMD [ARG...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "cleanroot: needs root" >&2; exit 2; }
src=$(cd "$(dirname "$0")/.." && pwd)

command -v debootstrap >/dev/null || {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2 ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2; }
}

# The host's own mirror, so the root sees the same archive the host does.
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit } /^deb / && $3 ~ /\/debian\/?$/ { print $3; exit }' \
	/etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}

root=${CLEANROOT_DIR:-}
if [ -z "$root" ]; then
	root=$(mktemp -d /var/tmp/cocoon-cleanroot.XXXXXX)
	chmod 0755 "$root" # apt downloads as _apt, which must reach its lists
	trap 'umount -R "$root" 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT
fi
if [ ! -e "$root/.debootstrap-complete" ]; then
	echo "cleanroot: debootstrap bookworm from $mirror into $root" >&2
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
		{ tail -20 "$root.log" >&2; exit 1; }
	rm -f "$root.log"
	touch "$root/.debootstrap-complete"
fi
# The machine's own settings come along, as they would on a fresh machine:
# its resolver, the certificate authorities it trusts (picked up when
# install-deps.sh installs ca-certificates) and its Go environment file.
cp /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/usr/local/share/ca-certificates" "$root/root/.config/go"
cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
goenv=$(go env GOENV 2>/dev/null || true)
[ ! -f "$goenv" ] || cp "$goenv" "$root/root/.config/go/env"

gomodcache=$(go env GOMODCACHE 2>/dev/null || /usr/local/go/bin/go env GOMODCACHE)
mkdir -p "$gomodcache" "$root/src" "$root/usr/local/go" "$root/gomodcache"

# Everything below runs in a private mount namespace: the binds vanish with
# it. unshare runs as a child, not in this shell's place, so that the EXIT
# trap still removes the root afterwards (an exec'd shell runs no trap).
unshare --mount --propagation private -- bash -euo pipefail -c '
	root=$1 src=$2 gomodcache=$3
	shift 3
	mount --bind "$root" "$root"
	mount --bind "$src" "$root/src"
	mount --bind /usr/local/go "$root/usr/local/go"
	mount -o remount,bind,ro "$root/usr/local/go"
	mount --bind "$gomodcache" "$root/gomodcache"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs -o mode=0755 tmpfs "$root/run"
	mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
	cd "$root"
	mkdir -p .oldroot
	pivot_root . .oldroot
	umount -l /.oldroot
	rmdir /.oldroot
	cd /src
	keep=()
	for v in CI TERM GOPROXY GOSUMDB GONOSUMDB GOPRIVATE GOFLAGS SSL_CERT_FILE SSL_CERT_DIR \
		http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
		[ -z "${!v+x}" ] || keep+=("$v=${!v}")
	done
	exec env -i HOME=/root LANG=C.UTF-8 "${keep[@]}" \
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		GOMODCACHE=/gomodcache "$@"
' cleanroot "$root" "$src" "$gomodcache" "$@"
