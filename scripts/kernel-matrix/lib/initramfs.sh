# shellcheck shell=bash
# Builds the per-kernel initramfs: static busybox, the two guest stages, a
# config file and the decompressed modules listed in load order.
# Sourced by run.sh; needs lib/kernel.sh.

# km_build_initramfs RELEASE OUT MODULES CONF_FILE
km_build_initramfs() {
	local rel=$1 out=$2 modules=$3 conf=$4
	local moddir=$KM_CACHE/$rel/root/lib/modules/$rel
	local stage work ko
	work=$(mktemp -d "${TMPDIR:-/tmp}/km-initramfs.XXXXXX")
	stage=$work/root
	mkdir -p "$stage/bin" "$stage/modules"
	cp /bin/busybox "$stage/bin/busybox"
	cp "$KM_DIR/guest/init" "$stage/init"
	cp "$KM_DIR/guest/stage2" "$stage/stage2"
	cp "$conf" "$stage/km.conf"

	local paths
	paths=$(km_module_paths "$rel" "$modules")
	: >"$stage/modules/order"
	while IFS= read -r ko; do
		[[ -n $ko ]] || continue
		local dst=${ko##*/}
		dst=${dst%%.ko*}.ko
		# busybox insmod hands the file to init_module() as is; the kernel's
		# in-kernel decompression is not something to rely on across versions.
		case $ko in
		*.ko.xz) xz -dc "$moddir/$ko" >"$stage/modules/$dst" ;;
		*.ko.zst) zstd -dcq "$moddir/$ko" >"$stage/modules/$dst" ;;
		*.ko.gz) gzip -dc "$moddir/$ko" >"$stage/modules/$dst" ;;
		*.ko) cp "$moddir/$ko" "$stage/modules/$dst" ;;
		*) die "unexpected module file $ko" ;;
		esac
		echo "$dst" >>"$stage/modules/order"
	done <<<"$paths"

	# Uncompressed newc: qemu loads it via fw_cfg DMA quickly, and the kernel
	# then skips a decompression that would be slow under TCG.
	(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) >"$out"
	rm -rf "$work"
}
