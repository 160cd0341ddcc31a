# shellcheck shell=bash
# Kernel acquisition for the kernel matrix: turns a kernel spec ("6.1",
# "6.12.117+deb12-amd64", ...) into a cached, unpacked Debian kernel with an
# uncompressed ELF vmlinux and a depmod'ed module tree.
#
# Cache layout, one directory per kernel release:
#   $KM_CACHE/<release>/root/      dpkg -x of the linux-image .deb (never installed)
#   $KM_CACHE/<release>/vmlinux    ELF image for qemu's PVH direct boot
#   $KM_CACHE/<release>/package    name_version of the .deb it came from
#   $KM_CACHE/<release>/.ready     written last; a directory without it is redone
#
# Sourced by run.sh; expects KM_CACHE to be set and log() / die() to exist.

# Only the generic flavour: -cloud lacks 9p, -rt is not what users run.
KM_FLAVOUR=amd64

# km_apt_releases SERIES: every <release> apt knows for SERIES (e.g. 6.1),
# one per line. Debian names releases 6.1.0-56-amd64 in bookworm and
# 6.12.117+deb12-amd64 for the newer kernel shipped to bookworm.
km_apt_releases() {
	local series_re=${1//./\\.}
	apt-cache search --names-only "^linux-image-${series_re}\\." 2>/dev/null |
		awk '{print $1}' |
		sed -nE "s/^linux-image-(${series_re}\\.[0-9]+(-[0-9]+)?(\\+deb[0-9]+)?-${KM_FLAVOUR})(-unsigned)?\$/\\1/p" |
		sort -u
}

# km_cached_releases SERIES: releases of SERIES already complete in the cache,
# so a machine without package lists (or offline) can still run the matrix.
km_cached_releases() {
	local series_re=${1//./\\.} d
	for d in "$KM_CACHE"/*/.ready; do
		[[ -e $d ]] || continue
		d=${d%/.ready}
		d=${d##*/}
		[[ $d =~ ^${series_re}\.[0-9] ]] && echo "$d"
	done
	return 0
}

km_have_apt_lists() {
	[[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null) ]]
}

# km_resolve SPEC: print the kernel release to use for SPEC.
#   "6.1"                -> newest 6.1.x release known to apt (or the cache)
#   "6.1.0-55[-amd64]"   -> exactly that release
km_resolve() {
	local spec=$1 newest
	if [[ $spec =~ ^[0-9]+\.[0-9]+$ ]]; then
		if ! km_have_apt_lists; then
			# Fresh machine: apt-cache knows nothing until the lists exist.
			log "apt package lists missing; running apt-get update"
			apt-get update -qq >/dev/null || log "warning: apt-get update failed"
		fi
		newest=$({ km_apt_releases "$spec"; km_cached_releases "$spec"; } | sort -uV | tail -n1)
		[[ -n $newest ]] || die "no linux-image-$spec.*-$KM_FLAVOUR package in the configured apt sources (is the suite that ships it, e.g. bookworm-security or bookworm-backports, in /etc/apt/sources.list*?)"
		echo "$newest"
	else
		[[ $spec == *-"$KM_FLAVOUR" ]] || spec+="-$KM_FLAVOUR"
		echo "$spec"
	fi
}

# km_extract_vmlinux BZIMAGE OUT: write the ELF kernel embedded in BZIMAGE.
# Rather than scanning for compression magic we read the boot protocol header
# (Documentation/arch/x86/boot.rst): setup_sects at 0x1f1 says where the
# protected-mode part starts, and payload_offset/payload_length at 0x248/0x24c
# locate the compressed kernel exactly. The payload ends with a 4-byte
# little-endian uncompressed size appended by the kernel build; the
# decompressors below stop at the end of their stream, so it is harmless.
km_extract_vmlinux() {
	local bz=$1 out=$2 setup poff plen start magic
	setup=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
	((setup == 0)) && setup=4 # boot protocol: 0 means the historical 4
	poff=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
	plen=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
	start=$(((setup + 1) * 512 + poff))
	magic=$(od -An -tx1 -j "$start" -N6 "$bz" | tr -d ' \n')
	local -a dec
	case $magic in
	fd377a585a00) dec=(xz -dcq --single-stream) ;;
	28b52ffd*) dec=(zstd -dcq) ;;
	1f8b*) dec=(gzip -dcq) ;;
	*) die "$bz: unsupported payload compression (magic $magic)" ;;
	esac
	# Decompressors may complain about the trailing size word; judge success by
	# the result being an ELF file instead of by their exit status.
	tail -c +"$((start + 1))" "$bz" | head -c "$plen" | "${dec[@]}" >"$out.tmp" 2>/dev/null || true
	[[ $(od -An -tx1 -N4 "$out.tmp" | tr -d ' \n') == 7f454c46 ]] ||
		die "$bz: decompressed payload is not an ELF image"
	mv "$out.tmp" "$out"
}

# km_prepare RELEASE: make sure $KM_CACHE/RELEASE is complete; downloads and
# unpacks the package on first use. Serialised per release with flock so two
# concurrent matrix runs do not unpack into the same directory.
km_prepare() {
	local rel=$1 dir=$KM_CACHE/$1
	mkdir -p "$dir"
	(
		flock 9
		[[ -e $dir/.ready ]] && exit 0
		log "fetching kernel $rel into $dir"
		rm -rf "$dir/root" "$dir/dl" "$dir/vmlinux"
		mkdir -p "$dir/dl"
		local pkg deb=
		# The unsigned image is the same kernel minus the Secure Boot signature,
		# which we do not need; fall back to the signed package if it is absent.
		for pkg in "linux-image-$rel-unsigned" "linux-image-$rel"; do
			# The download dir is not readable by apt's _apt sandbox user;
			# downloading as the invoking user is fine for a plain fetch.
			if (cd "$dir/dl" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null 2>&1); then
				deb=$(find "$dir/dl" -name '*.deb' -print -quit)
				break
			fi
		done
		[[ -n $deb ]] || die "apt-get download found neither linux-image-$rel-unsigned nor linux-image-$rel"
		dpkg-deb -x "$deb" "$dir/root"
		basename "$deb" .deb >"$dir/package"
		rm -rf "$dir/dl"

		local bz=$dir/root/boot/vmlinuz-$rel
		[[ -f $bz ]] || die "package for $rel has no /boot/vmlinuz-$rel"
		km_extract_vmlinux "$bz" "$dir/vmlinux"
		# The package ships no modules.dep (postinst runs depmod); generate
		# it here so dependencies can be resolved for the initramfs and so
		# modprobe / module autoloading work inside the guest.
		depmod -b "$dir/root" "$rel"
		touch "$dir/.ready"
	) 9>"$dir/.lock" || return 1
}

# km_module_paths RELEASE MODULES: print the module files (relative to
# lib/modules/RELEASE) to insmod for MODULES, dependencies first, each once.
# Built-in modules are skipped; a module that does not exist is an error.
# Only for what must load before the root exists: everything later goes
# through modprobe in the guest, which also honours softdeps and aliases.
km_module_paths() {
	local rel=$1 wanted=$2
	local moddir=$KM_CACHE/$rel/root/lib/modules/$rel
	local -A path_of=() deps_of=() builtin=() seen=()
	local line file deps name
	# Thousands of lines: derive names with parameter expansion, not a
	# km_modname subshell per line.
	while IFS= read -r line; do
		file=${line%%:*}
		deps=${line#*:}
		name=${file##*/}
		name=${name%%.ko*}
		path_of[${name//-/_}]=$file
		deps_of[$file]=$deps
	done <"$moddir/modules.dep"
	while IFS= read -r file; do
		name=${file##*/}
		name=${name%%.ko*}
		builtin[${name//-/_}]=1
	done <"$moddir/modules.builtin"

	local -a order=()
	_km_visit() { # NAME: appends NAME's file to order after its dependencies
		local n=$1 f d
		[[ -n ${seen[$n]:-} || -n ${builtin[$n]:-} ]] && return 0
		f=${path_of[$n]:-}
		[[ -n $f ]] || die "module $n not found for $rel"
		seen[$n]=1
		for d in ${deps_of[$f]}; do
			_km_visit "$(km_modname "$d")"
		done
		order+=("$f")
	}
	for name in $wanted; do
		_km_visit "${name//-/_}"
	done
	((${#order[@]} == 0)) || printf '%s\n' "${order[@]}"
}

# km_modname PATH: module name as the kernel sees it ("9pnet_virtio").
km_modname() {
	local n=${1##*/}
	n=${n%%.ko*}
	echo "${n//-/_}"
}
