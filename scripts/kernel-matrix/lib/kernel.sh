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

# The lock file: one line per kernel, "series release version suite ci",
# '#' comments. See kernels.lock.
KM_LOCK=${KM_LOCK:-$KM_DIR/kernels.lock}

# km_lock_entries: the lock file's lines without comments, fields separated
# by single spaces.
km_lock_entries() {
	[[ -f $KM_LOCK ]] || return 0
	awk '!/^[[:space:]]*(#|$)/ {$1 = $1; print}' "$KM_LOCK"
}

# km_lock_field SPEC N: field N of the lock entry whose series (field 1) or
# release (field 2) is SPEC; nothing if SPEC is not locked.
km_lock_field() {
	km_lock_entries | awk -v s="$1" -v n="$2" '$1 == s || $2 == s {print $n; exit}'
}

# km_series_re SERIES: extended regex for the upstream versions of SERIES:
# "6.1" is 6.1.x (not 6.12), "7" any 7.y.z.
km_series_re() {
	local re=${1//./\\.}
	[[ $1 == *.* ]] || re+='\.[0-9]+'
	echo "$re"
}

# km_apt_releases SERIES: every <release> the private apt knows for SERIES,
# one per line. Debian names releases 5.10.0-46-amd64 (bullseye),
# 6.1.0-56-amd64 (bookworm), 6.12.117+deb12-amd64 (a newer kernel built for
# bookworm), 6.12.115+deb13.1-amd64, 7.3.4+deb13-amd64. Backports named after
# an older release (6.1.0-0.deb11.52) are left out.
km_apt_releases() {
	local re
	re=$(km_series_re "$1")
	km_apt apt-cache search --names-only "^linux-image-${re}\\." 2>/dev/null |
		awk '{print $1}' |
		sed -nE "s/^linux-image-(${re}\\.[0-9]+(-[0-9]+)?(\\+deb[0-9]+(\\.[0-9]+)?)?-${KM_FLAVOUR})(-unsigned)?\$/\\1/p" |
		sort -uV
}

# km_apt_newest SERIES: "release version suite" of the newest kernel of
# SERIES in the private apt's suites (experimental is not among them) whose
# packages are all there: the archive lists some split kernels (6.19.14)
# with linux-binary but without their linux-modules.
km_apt_newest() {
	local rel vs
	while read -r rel; do
		vs=$(km_apt_version "$rel")
		if km_packages "$rel" "${vs% *}" >/dev/null; then
			echo "$rel $vs"
			return 0
		fi
		log "skipping $rel ${vs% *}: its packages are incomplete in the archive"
	done < <(km_apt_releases "$1" | sort -rV)
	return 1
}

# km_apt_version RELEASE: "version suite" of the newest package of RELEASE.
km_apt_version() {
	km_apt apt-cache madison "linux-image-$1" 2>/dev/null |
		awk -F'|' '{gsub(/ /, "", $2); split($3, a, " "); sub(/\/.*/, "", a[2]); print $2, a[2]}' |
		sort -V -k1,1 | tail -n1
}

# km_cached_releases SERIES: releases of SERIES already complete in the cache,
# so a machine without package lists (or offline) can still run the matrix.
km_cached_releases() {
	local re d
	re=$(km_series_re "$1")
	for d in "$KM_CACHE"/*/.ready; do
		[[ -e $d ]] || continue
		d=${d%/.ready}
		d=${d##*/}
		[[ $d =~ ^${re}\.[0-9] ]] && echo "$d"
	done
	return 0
}

# km_resolve SPEC: print the kernel release to use for SPEC.
#   "6.1", "7"           -> the release kernels.lock pins for that series, or
#                           (not locked) the newest one apt or the cache knows
#   "6.1.0-55[-amd64]"   -> exactly that release
km_resolve() {
	local spec=$1 newest
	if [[ $spec =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
		newest=$(km_lock_field "$spec" 2)
		if [[ -z $newest ]]; then
			km_apt_update
			newest=$({ km_apt_releases "$spec"; km_cached_releases "$spec"; } | sort -uV | tail -n1)
		fi
		[[ -n $newest ]] || die "no linux-image-$spec.*-$KM_FLAVOUR package in the suites searched ($KM_APT_SUITES)"
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
	5d0000*) dec=(xz -dcq --format=lzma) ;;
	425a68*) dec=(bzip2 -dcq) ;;
	894c5a4f*) dec=(lzop -dcq) ;;
	02214c18*) dec=(lz4 -dcq) ;;
	*) die "$bz: unsupported payload compression (magic $magic)" ;;
	esac
	# Decompressors may complain about the trailing size word; judge success by
	# the result being an ELF file instead of by their exit status.
	tail -c +"$((start + 1))" "$bz" | head -c "$plen" | "${dec[@]}" >"$out.tmp" 2>/dev/null || true
	[[ $(od -An -tx1 -N4 "$out.tmp" | tr -d ' \n') == 7f454c46 ]] ||
		die "$bz: decompressed payload is not an ELF image"
	mv "$out.tmp" "$out"
}

# km_packages RELEASE VERSION: the packages that make up RELEASE at VERSION,
# as pkg=version, one per line. Up to 6.18 the kernel and its modules are
# one linux-image package (the -unsigned one if there is one: the same kernel
# minus the Secure Boot signature), next to a linux-base package from 6.18 on
# (System.map, config, modules.builtin). From 6.19 on linux-image is empty and
# the kernel is split into linux-binary (vmlinuz), linux-modules and
# linux-base.
km_packages() {
	local rel=$1 ver=$2 pkg found=0
	for pkg in "linux-image-$rel-unsigned" "linux-image-$rel" "linux-binary-$rel"; do
		if _km_has_version "$pkg" "$ver"; then
			[[ $pkg == linux-image-* ]] && ((found)) && continue
			echo "$pkg=$ver"
			found=1
		fi
	done
	((found)) || return 1
	local split=0
	_km_has_version "linux-binary-$rel" "$ver" && split=1
	if _km_has_version "linux-modules-$rel" "$ver"; then
		echo "linux-modules-$rel=$ver"
	elif ((split)); then
		return 1 # a split kernel without its modules
	fi
	_km_has_version "linux-base-$rel" "$ver" && echo "linux-base-$rel=$ver"
	return 0
}

_km_has_version() {
	km_apt apt-cache madison "$1" 2>/dev/null | awk -F'|' -v v="$2" '{gsub(/ /, "", $2)} $2 == v {f = 1} END {exit !f}'
}

# km_prepare RELEASE: make sure $KM_CACHE/RELEASE is complete; downloads and
# unpacks the packages on first use, at the version kernels.lock pins (else
# the newest apt knows). Serialised per release with flock so two concurrent
# matrix runs do not unpack into the same directory.
km_prepare() {
	local rel=$1 dir=$KM_CACHE/$1 want
	want=$(km_lock_field "$rel" 3)
	mkdir -p "$dir"
	(
		flock 9
		if [[ -e $dir/.ready ]]; then
			# A cached kernel of another Debian revision than the pinned
			# one is not the pinned kernel: redo it.
			[[ -z $want || $(cat "$dir/version" 2>/dev/null) == "$want" ]] && exit 0
			log "cached $rel is not the pinned version $want: refetching"
			rm -f "$dir/.ready"
		fi
		km_apt_update
		local ver=$want pkgs p deb
		if [[ -z $ver ]]; then
			ver=$(km_apt_version "$rel" | awk '{print $1}')
			[[ -n $ver ]] || die "apt knows no linux-image-$rel (suites: $KM_APT_SUITES)"
		fi
		if ! pkgs=$(km_packages "$rel" "$ver"); then
			# Pinned, but the lists are older than the lock file.
			km_apt_update force
			pkgs=$(km_packages "$rel" "$ver") || die "no package of kernel $rel at version $ver in $KM_APT_SUITES (run make kernels-update?)"
		fi
		local names
		names=$(cut -d= -f1 <<<"$pkgs" | xargs)
		log "fetching kernel $rel ($ver: $names) into $dir"
		rm -rf "$dir/root" "$dir/dl" "$dir/vmlinux"
		mkdir -p "$dir/dl"
		# shellcheck disable=SC2086 # one package per word
		(cd "$dir/dl" && km_apt apt-get download -qq $pkgs >/dev/null) ||
			die "apt-get download of $names at $ver failed"
		for deb in "$dir"/dl/*.deb; do
			dpkg-deb -x "$deb" "$dir/root"
		done
		for p in $pkgs; do echo "$p"; done >"$dir/package"
		echo "$ver" >"$dir/version"
		rm -rf "$dir/dl"

		# Trixie's packages (and all from 6.19) put the modules under
		# /usr/lib/modules; the rest of the runner, depmod and the guest
		# expect root/lib/modules.
		if [[ ! -d $dir/root/lib/modules/$rel && -d $dir/root/usr/lib/modules/$rel ]]; then
			mkdir -p "$dir/root/lib/modules"
			mv "$dir/root/usr/lib/modules/$rel" "$dir/root/lib/modules/$rel"
		fi
		local bz
		for bz in "$dir/root/boot/vmlinuz-$rel" "$dir/root/lib/modules/$rel/vmlinuz" ""; do
			[[ -f $bz ]] && break
		done
		[[ -n $bz ]] || die "packages of $rel have neither /boot/vmlinuz-$rel nor /usr/lib/modules/$rel/vmlinuz"
		[[ -f $dir/root/lib/modules/$rel/modules.builtin ]] || die "packages of $rel have no modules.builtin"
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
