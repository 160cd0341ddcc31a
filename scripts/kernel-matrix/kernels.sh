#!/usr/bin/env bash
# The pinned kernel set (kernels.lock) of the kernel matrix.
#
#   kernels.sh list      every pinned release, space separated (make's KERNELS)
#   kernels.sh ci        the releases marked for CI (ci column "yes"); fails
#                        unless the oldest and the newest series are among them
#   kernels.sh update    resolve the newest release of every series in the
#                        private apt's suites and rewrite kernels.lock
#                        (make kernels-update); prints what moved
#
# To add a series, add a line with just the series (e.g. "7.4") and run
# update; to drop one, delete its line.
set -euo pipefail

KM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KM_CACHE=${TCPTRACE_KERNEL_CACHE:-/var/cache/tcptrace-kernels}
log() { echo "kernels: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
# shellcheck source=lib/apt.sh
. "$KM_DIR/lib/apt.sh"
# shellcheck source=lib/kernel.sh
. "$KM_DIR/lib/kernel.sh"

# sorted_by_series: lock entries, oldest series first.
sorted_by_series() {
	km_lock_entries | sort -V -k1,1
}

cmd_list() {
	km_lock_entries | awk '{print $2}' | xargs
}

cmd_ci() {
	local oldest newest
	oldest=$(sorted_by_series | head -n1 | awk '{print $1, $5}')
	newest=$(sorted_by_series | tail -n1 | awk '{print $1, $5}')
	[[ ${oldest#* } == yes ]] || die "the oldest series (${oldest% *}) must be in the CI subset (ci column yes in $KM_LOCK)"
	[[ ${newest#* } == yes ]] || die "the newest series (${newest% *}) must be in the CI subset (ci column yes in $KM_LOCK)"
	km_lock_entries | awk '$5 == "yes" {print $2}' | xargs
}

cmd_update() {
	[[ -f $KM_LOCK ]] || die "$KM_LOCK does not exist"
	mkdir -p "$KM_CACHE"
	km_apt_update force
	local tmp=$KM_LOCK.tmp series rel ver ci newest changed=0
	{
		# The comment block before the first entry is kept as it is.
		awk '/^[[:space:]]*(#|$)/ {print; next} {exit}' "$KM_LOCK"
		while read -r series rel ver _ ci; do
			newest=$(km_apt_newest "$series") || die "no kernel of series $series in $KM_APT_SUITES"
			read -r rel2 ver2 suite2 <<<"$newest"
			[[ -n $ci ]] || ci=yes
			if [[ $rel2 != "$rel" || $ver2 != "$ver" ]]; then
				log "$series: ${rel:--} ${ver:--} -> $rel2 $ver2 ($suite2)"
				changed=1
			fi
			printf '%-6s %-24s %-20s %-20s %s\n' "$series" "$rel2" "$ver2" "$suite2" "$ci"
		done < <(sorted_by_series)
	} >"$tmp"
	mv "$tmp" "$KM_LOCK"
	((changed)) || log "every series is at its newest release already"
	KM_LOCK=$KM_LOCK cmd_ci >/dev/null
}

case ${1:-} in
list) cmd_list ;;
ci) cmd_ci ;;
update) cmd_update ;;
*)
	sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
	;;
esac
