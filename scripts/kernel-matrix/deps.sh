#!/usr/bin/env bash
# Installs the host tools the kernel-matrix runner needs on Debian bookworm.
# Idempotent: packages already present are skipped, so re-running is cheap and
# does not touch the network unless something is actually missing.
set -euo pipefail

# package -> a file it provides, used to decide whether it is installed.
# We check files rather than dpkg status so that tools installed some other
# way (or by a different package name) are accepted too.
declare -A PROVIDES=(
	[qemu-system-x86]=qemu-system-x86_64
	[busybox-static]=/bin/busybox
	[xz-utils]=xz
	[zstd]=zstd
	[cpio]=cpio
	[kmod]=modinfo
	[iproute2]=ip
	# The private apt (lib/apt.sh) checks the kernel suites' signatures
	# with it: bullseye, bookworm and trixie keys (sid is signed with those).
	[debian-archive-keyring]=/usr/share/keyrings/debian-archive-keyring.gpg
)

have() {
	case "$1" in
	/*) [[ -e "$1" ]] ;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

main() {
	local missing=() pkg
	for pkg in "${!PROVIDES[@]}"; do
		# busybox-static specifically: a dynamically linked busybox would not
		# run inside the initramfs, which carries no libc.
		if [[ $pkg == busybox-static ]]; then
			dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
			continue
		fi
		have "${PROVIDES[$pkg]}" || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0

	local sudo=()
	((EUID == 0)) || sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	# A fresh machine may have no package lists at all; update only then or if
	# the install fails because the lists are stale.
	if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
		"${sudo[@]}" apt-get update -qq >/dev/null
		"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

main "$@"
