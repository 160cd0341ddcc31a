/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Programs: the sockets open when tracing starts, and their owners (iterators). */
#ifndef TCPTRACE_SNAPSHOT_BPF_H
#define TCPTRACE_SNAPSHOT_BPF_H

static __always_inline void task_owner(struct task_struct *task, struct owner *o)
{
	o->tgid = task->tgid;
	o->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel_str(o->comm, sizeof(o->comm), BPF_CORE_READ(task, group_leader, comm));
}

static __always_inline void note_preexisting_owner(__u64 addr, __u64 ino, struct task_struct *task)
{
	struct preexisting_owner p = {.ino = ino};

	task_owner(task, &p.owner);
	/* A socket shared by several processes: the first one seen owns it. */
	if (bpf_map_update_elem(&preexisting_owners, &addr, &p, BPF_NOEXIST) == -E2BIG)
		__sync_fetch_and_add(&preexisting_owners_dropped, 1);
}

/*
 * Start-of-trace snapshot, run by user space before it attaches the
 * tracepoints, in three walks: learn_owners, then move_owners in each
 * namespace, then (after attaching) snapshot_tcp in each namespace.
 *
 * iter/task_file: every open file of every task; for a TCP socket, note its
 * owner, so that sockets made before tracing are attributed (and pass the owner filters)
 * like new ones. Every pointer reached from the file is only read
 * (BPF_CORE_READ), never handed to a helper: see preexisting_owners.
 */
SEC("iter/task_file")
int learn_owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct socket *sock;
	struct sock *sk;
	__u16 protocol;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk || !ids_wanted(task->tgid, BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id)))
		return 0;
	protocol = BPF_CORE_READ(sk, sk_protocol);
	/*
	 * An MPTCP socket (Go's listeners since 1.24) carries its traffic on
	 * TCP subflows; its first subflow is the TCP socket the kernel reports.
	 */
	if (protocol == IPPROTO_MPTCP) {
		__u64 first = (__u64)BPF_CORE_READ((struct mptcp_sock *)sk, first);

		if (first)
			note_preexisting_owner(first, 0, task);
		return 0;
	}
	if (protocol == IPPROTO_TCP)
		note_preexisting_owner((__u64)sk, BPF_CORE_READ(file, f_inode, i_ino), task);
	return 0;
}

/*
 * iter/tcp: every TCP socket of the namespace user space opened the
 * iterator in; a full socket learn_owners noted gets its owner kept on it
 * (see kept_owner) before any tracepoint runs.
 */
SEC("iter/tcp")
int move_owners(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct preexisting_owner *p;
	struct tcp_sock *tp;
	struct owner *o;
	__u64 addr, ino;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	addr = (__u64)skc;
	p = bpf_map_lookup_elem(&preexisting_owners, &addr);
	if (!p)
		return 0;
	ino = BPF_CORE_READ((struct sock *)tp, sk_socket, file, f_inode, i_ino);
	if (!p->ino || p->ino == ino) {
		o = keep_owner((const struct sock *)tp);
		if (o && !o->tgid)
			*o = p->owner;
	}
	bpf_map_delete_elem(&preexisting_owners, &addr);
	return 0;
}

/*
 * iter/tcp: every TCP socket of the namespace user space opened the
 * iterator in (listeners, connections, TIME_WAIT and request sockets),
 * written to the iterator's output as EVENT_SNAPSHOT records.
 */
SEC("iter/tcp")
int snapshot_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_timewait_sock *tw;
	struct owner *o = NULL;
	struct event e = {};
	struct tcp_sock *tp;
	struct sock_id id = {};
	__u8 state;

	if (!skc)
		return 0;
	state = skc->skc_state;
	id.family = skc->skc_family;
	id.netns = skc->skc_net.net->ns.inum;
	id.sport = skc->skc_num;
	id.dport = bpf_ntohs(skc->skc_dport);
	if (!id_wanted(&id))
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (tp)
		o = kept_owner((const struct sock *)tp);
	if (!owner_wanted(o))
		return 0;

	e.type = EVENT_SNAPSHOT;
	e.ts_ns = bpf_ktime_get_ns();
	e.state = state;
	e.netns = id.netns;
	e.sport = id.sport;
	e.dport = id.dport;
	e.family = id.family == AF_INET6 ? 6 : 4;
	if (o) {
		e.flags |= EVENT_FLAG_OWNER_KNOWN;
		e.pid = o->tgid;
		e.cgroup_id = o->cgroup_id;
		__builtin_memcpy(e.comm, o->comm, sizeof(e.comm));
	}
	if (e.family == 4) {
		*(__be32 *)e.saddr = skc->skc_rcv_saddr;
		*(__be32 *)e.daddr = skc->skc_daddr;
	} else {
		*(struct in6_addr *)e.saddr = skc->skc_v6_rcv_saddr;
		*(struct in6_addr *)e.daddr = skc->skc_v6_daddr;
	}
	/* TIME_WAIT and request socks get a cookie too, as their timers tell. */
	e.cookie = state == tcp_listen ? skc->skc_cookie.counter : bpf_get_socket_cookie(skc);
	tw = bpf_skc_to_tcp_timewait_sock(skc);
	if (tw) {
		e.substate = tw->tw_sk.tw_substate;
		e.timer_jiffies = tw->tw_sk.tw_timer.expires - bpf_jiffies64();
	}
	bpf_seq_write(ctx->meta->seq, &e, RECORD_LEN_TIMEWAIT);
	return 0;
}

#endif
