/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The filters given on the command line (--pid, --cgroup, --container,
 * --port, --lport, --rport, --netns, -4/-6), rewritten by the loader before
 * load, and the tests of a socket's identity and owner against them.
 */
#ifndef TCPTRACE_FILTER_H
#define TCPTRACE_FILTER_H

/* Filters, rewritten by the loader before load (0 / empty = no filter). */
const volatile __u32 filter_pid_count = 0;
const volatile __u32 filter_pids[MAX_FILTER_PIDS] = {};
const volatile __u32 filter_cgroup_count = 0; /* owners' cgroup v2 ids */
const volatile __u64 filter_cgroups[MAX_FILTER_CGROUPS] = {};
const volatile __u32 filter_port_count = 0; /* local or remote */
const volatile __u16 filter_ports[MAX_FILTER_PORTS] = {};
const volatile __u32 filter_lport_count = 0;
const volatile __u16 filter_lports[MAX_FILTER_PORTS] = {};
const volatile __u32 filter_rport_count = 0;
const volatile __u16 filter_rports[MAX_FILTER_PORTS] = {};
const volatile __u32 filter_netns = 0;
const volatile __u16 filter_family = 0; /* AF_INET or AF_INET6 */

/* Whether a filter on the sockets' owners is given (--pid, --cgroup, --container). */
static __always_inline bool owner_filtered(void)
{
	return filter_pid_count || filter_cgroup_count;
}

static __always_inline bool pid_wanted(__u32 tgid)
{
	if (!filter_pid_count)
		return true;
	for (__u32 i = 0; i < MAX_FILTER_PIDS; i++) {
		if (i >= filter_pid_count)
			break;
		if (filter_pids[i] == tgid)
			return true;
	}
	return false;
}

static __always_inline bool cgroup_wanted(__u64 cgroup_id)
{
	if (!filter_cgroup_count)
		return true;
	for (__u32 i = 0; i < MAX_FILTER_CGROUPS; i++) {
		if (i >= filter_cgroup_count)
			break;
		if (filter_cgroups[i] == cgroup_id)
			return true;
	}
	return false;
}

/* Whether a process in this cgroup passes the owner filters (--pid; --cgroup and --container, as cgroup ids). */
static __always_inline bool ids_wanted(__u32 tgid, __u64 cgroup_id)
{
	return pid_wanted(tgid) && cgroup_wanted(cgroup_id);
}

static __always_inline bool port_listed(const volatile __u16 *ports, __u32 count, __u16 port)
{
	for (__u32 i = 0; i < MAX_FILTER_PORTS; i++) {
		if (i >= count)
			break;
		if (ports[i] == port)
			return true;
	}
	return false;
}

/*
 * Every filter given must hold; the ports of one list are alternatives. A
 * zeroed remote port cannot be told any more: it passes the filters on the
 * remote side, and user space keeps it if it tracks the socket (by cookie).
 */
static __always_inline bool id_wanted(const struct sock_id *id)
{
	if (filter_netns && id->netns != filter_netns)
		return false;
	if (filter_family && id->family != filter_family)
		return false;
	if (filter_port_count && !id->remote_unknown && !port_listed(filter_ports, filter_port_count, id->sport) &&
	    !port_listed(filter_ports, filter_port_count, id->dport))
		return false;
	if (filter_lport_count && !port_listed(filter_lports, filter_lport_count, id->sport))
		return false;
	if (filter_rport_count && !id->remote_unknown && !port_listed(filter_rports, filter_rport_count, id->dport))
		return false;
	return true;
}

static __always_inline bool owner_wanted(const struct owner *o)
{
	if (!owner_filtered())
		return true;
	return o && ids_wanted(o->tgid, o->cgroup_id);
}

#endif
