# shellcheck shell=bash
# A private apt for the kernel matrix: Debian's archive serves kernels for
# more suites than the machine's own sources list (bullseye's 5.10, trixie's
# 6.12, trixie-backports' 6.16..7.x, sid). Everything apt needs for them lives
# under $KM_CACHE/apt (own sources, lists, cache, state and an empty dpkg
# status), selected with APT_CONFIG for the apt calls made here only, so the
# machine's /etc/apt and /var/lib/apt stay untouched.
#
# Signatures are checked with the machine's debian-archive-keyring, which
# holds the bullseye, bookworm and trixie archive keys (sid and experimental
# are signed with the same keys); nothing is trusted=yes.
#
# Sourced by run.sh and kernels-update.sh; expects KM_CACHE, log(), die().

KM_APT_DIR=$KM_CACHE/apt
# The package host the machine's own sources use (deb.debian.org).
KM_APT_MIRROR=${TCPTRACE_KERNEL_MIRROR:-http://deb.debian.org}
KM_APT_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# Suites searched, oldest first; the -security suites carry the newest
# kernel of a stable release as often as its main suite does.
KM_APT_SUITES="bullseye bullseye-security bookworm bookworm-security bookworm-backports trixie trixie-security trixie-backports sid"

# km_apt_setup: write the private configuration (cheap, idempotent).
km_apt_setup() {
	local d=$KM_APT_DIR s
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/state" "$d/parts" "$d/prefs"
	[[ -e $d/status ]] || : >"$d/status"
	cat >"$d/apt.conf.tmp" <<CONF
Dir::Etc::SourceList "$d/sources.list";
Dir::Etc::SourceParts "$d/parts";
Dir::Etc::Preferences "$d/preferences";
Dir::Etc::PreferencesParts "$d/prefs";
Dir::State "$d/state";
Dir::State::Lists "$d/lists";
Dir::State::status "$d/status";
Dir::Cache "$d/cache";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";
Acquire::IndexTargets::deb::Contents-udeb::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::CNF::DefaultEnabled "false";
Acquire::Check-Valid-Until "false";
CONF
	mv "$d/apt.conf.tmp" "$d/apt.conf"
	{
		for s in $KM_APT_SUITES; do
			local path=debian
			[[ $s == *-security ]] && path=debian-security
			printf 'deb [signed-by=%s] %s/%s %s main\n' "$KM_APT_KEYRING" "$KM_APT_MIRROR" "$path" "$s"
		done
	} >"$d/sources.list.tmp"
	mv "$d/sources.list.tmp" "$d/sources.list"
}

# km_apt ARGS...: run an apt command (apt-get, apt-cache) on the private
# configuration.
km_apt() {
	APT_CONFIG=$KM_APT_DIR/apt.conf "$@"
}

# km_apt_update [force]: refresh the private lists if missing (or if forced).
km_apt_update() {
	km_apt_setup
	if [[ ${1:-} == force || -z $(find "$KM_APT_DIR/lists" -maxdepth 1 -name '*_Packages*' -print -quit) ]]; then
		log "updating the kernel package lists (private apt in $KM_APT_DIR)"
		(
			flock 9
			km_apt apt-get update -qq -o APT::Update::Error-Mode=any >/dev/null
		) 9>"$KM_APT_DIR/.lock" || die "apt-get update of the kernel suites failed"
	fi
}
