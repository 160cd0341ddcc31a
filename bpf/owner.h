/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Who owns a socket: the task running, or the owner kept on the socket. */
#ifndef TCPTRACE_OWNER_H
#define TCPTRACE_OWNER_H

/*
 * The owner kept on a socket: under the owner filters (--pid, --cgroup, --container) in its storage (every socket of a
 * wanted process has one); otherwise in kept_owners. NULL if none.
 */
static __always_inline struct owner *kept_owner(const struct sock *sk)
{
	struct sock_info *info;
	struct owner *o;

	if (!owner_filtered()) {
		o = bpf_sk_storage_get(&kept_owners, (void *)sk, NULL, 0);
		return o && o->tgid ? o : NULL;
	}
	info = bpf_sk_storage_get(&socks, (void *)sk, NULL, 0);
	return info && info->owner.tgid ? &info->owner : NULL;
}

/* Where to keep a socket's owner (see kept_owner), made if need be. */
static __always_inline struct owner *keep_owner(const struct sock *sk)
{
	struct sock_info *info;

	if (!owner_filtered())
		return bpf_sk_storage_get(&kept_owners, (void *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	info = bpf_sk_storage_get(&socks, (void *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	return info ? &info->owner : NULL;
}

static __always_inline void current_owner(struct owner *o)
{
	struct task_struct *task = bpf_get_current_task_btf();

	o->tgid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup_id = bpf_get_current_cgroup_id();
	/*
	 * The process's name, not the name of the thread that happens to run:
	 * read directly through BTF, cheaper than a probe-read helper (the
	 * kernel pads comm with NULs).
	 */
	__builtin_memcpy(o->comm, task->group_leader->comm, sizeof(o->comm));
}

/*
 * Whether the task running owns the socket it closes (a move to CLOSE, a
 * destroy): it does while it holds the socket (lock_sock(): close()
 * aborting a connection or closing a listener, shutdown(), connect(), or
 * the backlog and deferred timers it runs as it lets go), because softirq
 * and timers leave a held socket alone (they queue to its backlog, or defer
 * to tcp_release_cb()). Not in a kernel thread (MPTCP's worker, in-kernel
 * users), nor in tcp_abort() (sock_diag's SOCK_DESTROY: ss -K;
 * bpf_sock_destroy()), which holds the socket from another task and leaves
 * ECONNABORTED in sk_err as it closes it (but for a listener, which it
 * closes before).
 */
static __always_inline bool closed_by_owner(const struct sock *sk)
{
	if (!sk->sk_lock.owned || sk->sk_err == econnaborted)
		return false;
	return !(bpf_get_current_task_btf()->flags & PF_KTHREAD);
}

/*
 * Whether a transition into new_state runs in the owning process's context:
 * connect() (SYN_SENT), listen() (LISTEN), close()/shutdown() (FIN_WAIT1,
 * LAST_ACK), a move to CLOSE by the task holding the socket. Everything
 * else may run in softirq on any task.
 */
static __always_inline bool owner_in_context(const struct sock *sk, int new_state)
{
	return new_state == tcp_syn_sent || new_state == tcp_listen || new_state == tcp_fin_wait1 ||
	       new_state == tcp_last_ack || (new_state == tcp_close && closed_by_owner(sk));
}

static __always_inline void remember_owner(const struct sock *sk, const struct owner *o)
{
	struct tw_owner two = {.owner = *o};
	__u64 cookie = bpf_get_socket_cookie((void *)sk);

	bpf_map_update_elem(&cookie_owners, &cookie, &two, BPF_ANY);
}

#endif
