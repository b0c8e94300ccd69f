#!/usr/bin/env bash
# Install the cocoon guest image into a Kata Containers host (kata-deploy or
# a packaged Kata) for the Go runtime and runtime-rs at once.
#
#   rootfs/install.sh [options]            install build/ and apply drop-ins
#   rootfs/install.sh --reapply            re-apply the installed drop-ins
#                                          (after a kata-deploy upgrade)
#   rootfs/install.sh --rollback           go back to the previous install
#   rootfs/install.sh --uninstall          remove drop-ins and cocoon's files
#
# Options:
#   --build DIR    output of make rootfs (default build)
#   --root DIR     host root the paths below are under (default /; tests)
#   --kata DIR     Kata's install prefix (default /opt/kata)
#   --prefix DIR   cocoon's own prefix (default /opt/cocoon)
#   --shims LIST   space-separated Kata shims (default: the SNP and TDX shims
#                  of both runtimes); shims not installed are skipped
#
# Where things go, and why: kata-deploy deletes its whole install tree when
# its DaemonSet pod stops (uninstall, and every upgrade, which is a rollout:
# tools/packaging/kata-deploy/binary/src/artifacts/install.rs,
# remove_artifacts). So the image and the fragment live under --prefix,
# outside that tree, and only the drop-in, which must sit in the shim's
# config.d, is inside it. After kata-deploy upgrades, run --reapply, or hand
# the generated kata-deploy-values.yaml to helm so that kata-deploy writes
# the same drop-in itself on every install (shims.<shim>.dropIn).
#
# The drop-in is named 50-cocoon.toml so that Kata reads it after
# kata-deploy's 10-installation-prefix, 20-debug and 30-kernel-params and
# before a user's 50-user-overrides. A drop-in replaces a whole key, so its
# kernel_params repeats the value in force before it (the configuration
# file or kata-deploy's 30-kernel-params.toml, with its proxy settings) and
# adds only the fragment's parameters whose names are not already there.
set -euo pipefail

build=build root="" kata=/opt/kata prefix=/opt/cocoon action=install
shims="qemu-snp qemu-tdx qemu-snp-runtime-rs qemu-tdx-runtime-rs"
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=${2:?}; shift ;;
	--root) root=${2:?}; shift ;;
	--kata) kata=${2:?}; shift ;;
	--prefix) prefix=${2:?}; shift ;;
	--shims) shims=${2:?}; shift ;;
	--reapply) action=reapply ;;
	--rollback) action=rollback ;;
	--uninstall) action=uninstall ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
root=${root%/}
share=$prefix/share/cocoon # as the host sees it, written into the drop-in
dest=$root$share
dropin=50-cocoon.toml
log() { echo "cocoon install: $*" >&2; }
die() { log "$*"; exit 1; }

# toml_string FILE KEY prints the value of a one-line string KEY = "..." (the
# form Kata and kata-deploy write), the last one in FILE.
toml_string() {
	sed -n -E "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*\"(.*)\"[[:space:]]*(#.*)?$/\\1/p" "$1" | tail -n 1
}

# shim_config SHIM prints the real configuration file of SHIM, resolving the
# symlink kata-deploy puts at the original path, as both runtimes do before
# they look for config.d next to it.
shim_config() {
	local dir=$root$kata/share/defaults/kata-containers
	case "$1" in *-runtime-rs) dir=$dir/runtime-rs ;; esac
	local f=$dir/configuration-$1.toml
	[ -e "$f" ] || return 1
	readlink -f "$f"
}

# base_params CONFIG prints the kernel_params in force before our drop-in:
# the configuration file, then each drop-in sorting before ours.
base_params() {
	local cfg=$1 v f
	v=$(toml_string "$cfg" kernel_params)
	for f in "$(dirname "$cfg")"/config.d/*.toml; do
		[ -e "$f" ] || continue
		[[ "$(basename "$f")" < "$dropin" ]] || continue
		if grep -q -E '^[[:space:]]*kernel_params[[:space:]]*=' "$f"; then
			v=$(toml_string "$f" kernel_params)
		fi
	done
	printf '%s' "$v"
}

# compose BASE EXTRA appends each parameter of EXTRA whose name BASE lacks.
compose() {
	local out=$1 p k
	declare -A have=()
	for p in $1; do have[${p%%=*}]=1; done
	for p in $2; do
		k=${p%%=*}
		[ -n "${have[$k]:-}" ] && continue
		have[$k]=1
		out="${out:+$out }$p"
	done
	printf '%s' "$out"
}

# render SHIM CONFIG writes the drop-in for one shim to stdout.
render() {
	local frag=$dest/configuration-cocoon.toml params
	params=$(compose "$(base_params "$2")" "$(toml_string "$frag" kernel_params)")
	cat <<EOF
# cocoon guest image for $1, written by cocoon's rootfs/install.sh.
# kernel_params repeats the value Kata had before this file: rerun
# install.sh --reapply when kata-deploy's settings change.
[hypervisor.qemu]
image = "$share/cocoon-rootfs.img"
rootfs_type = "$(toml_string "$frag" rootfs_type)"
disable_image_nvdimm = true
kernel_verity_params = "$(toml_string "$frag" kernel_verity_params)"
kernel_params = "$params"
EOF
}

# apply writes every installed shim's drop-in and the helm values that make
# kata-deploy write the same drop-ins itself.
apply() {
	[ -f "$dest/configuration-cocoon.toml" ] || die "nothing installed under $dest (run without --reapply first)"
	local shim cfg n=0 values=$dest/kata-deploy-values.yaml
	printf '# helm upgrade kata-deploy ... -f %s\nshims:\n' "$share/kata-deploy-values.yaml" >"$values.tmp"
	for shim in $shims; do
		if ! cfg=$(shim_config "$shim"); then
			log "$shim: not installed in $kata, skipped"
			continue
		fi
		mkdir -p "$(dirname "$cfg")/config.d"
		render "$shim" "$cfg" >"$(dirname "$cfg")/config.d/.$dropin.tmp"
		mv -f "$(dirname "$cfg")/config.d/.$dropin.tmp" "$(dirname "$cfg")/config.d/$dropin"
		{
			printf '  %s:\n    dropIn: |\n' "$shim"
			sed 's/^/      /' "$(dirname "$cfg")/config.d/$dropin"
		} >>"$values.tmp"
		log "$shim: $(dirname "$cfg")/config.d/$dropin"
		n=$((n + 1))
	done
	mv -f "$values.tmp" "$values"
	[ "$n" -gt 0 ] || die "none of the shims ($shims) is installed under $root$kata"
}

remove_dropins() {
	local shim cfg
	for shim in $shims; do
		cfg=$(shim_config "$shim") || continue
		rm -f "$(dirname "$cfg")/config.d/$dropin"
	done
}

case "$action" in
install)
	[ -f "$build/cocoon-rootfs.img" ] || die "$build/cocoon-rootfs.img missing (make rootfs)"
	[ -f "$build/configuration-cocoon.toml" ] || die "$build/configuration-cocoon.toml missing (make rootfs)"
	# The previous install is kept whole for --rollback.
	if [ -d "$dest" ]; then
		rm -rf "$dest.prev"
		mv "$dest" "$dest.prev"
	fi
	mkdir -p "$dest.new"
	install -m 0644 "$build/cocoon-rootfs.img" "$dest.new/cocoon-rootfs.img"
	[ -f "$build/cocoon-initrd.img" ] && install -m 0644 "$build/cocoon-initrd.img" "$dest.new/cocoon-initrd.img"
	for f in root_hash.txt manifest.txt; do
		[ -f "$build/$f" ] && install -m 0644 "$build/$f" "$dest.new/$f"
	done
	install -m 0644 "$build/configuration-cocoon.toml" "$dest.new/configuration-cocoon.toml"
	mv "$dest.new" "$dest"
	apply
	;;
reapply) apply ;;
rollback)
	[ -d "$dest.prev" ] || die "no previous install at $dest.prev"
	rm -rf "$dest.new"
	mv "$dest" "$dest.new"
	mv "$dest.prev" "$dest"
	mv "$dest.new" "$dest.prev"
	apply
	;;
uninstall)
	remove_dropins
	rm -rf "$dest" "$dest.prev"
	log "removed $dest and the $dropin drop-ins"
	;;
esac
