#!/usr/bin/env bash
# Installs the Debian packages tcptrace's build and tests need, if missing:
# clang/llvm/libbpf-dev to regenerate the BPF object; nftables, iproute2 and
# procps (sysctl) for the end-to-end scenarios; util-linux for setpriv; tmux
# for the status-line test; chromium to look at the HTML report; prometheus
# (promtool, and the server) for the metrics tests; qemu-user to run the
# replay tests on a big-endian CPU (s390x); podman, and runc for hosts whose
# hybrid cgroups crun refuses, to run the image as a node would. Idempotent.
set -euo pipefail

need=()
for pkg in clang llvm libbpf-dev nftables iproute2 procps util-linux tmux make git chromium prometheus qemu-user podman runc; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
