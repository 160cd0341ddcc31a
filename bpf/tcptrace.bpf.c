//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcptrace's kernel side: tp_btf programs on the TCP tracepoints that turn
 * state changes, retransmits, resets and socket teardown into ring-buffer
 * records, each attributed to the socket's owning process.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Put the record types in the object's BTF, where bpf2go finds them. */
const struct event *unused_event __attribute__((unused));
const enum event_type unused_event_type __attribute__((unused));
const enum event_flag unused_event_flag __attribute__((unused));
const enum tcp_timer_kind unused_tcp_timer_kind __attribute__((unused));
const enum tw_flag unused_tw_flag __attribute__((unused));
const enum record_tail unused_record_tail __attribute__((unused));
const enum handshake_option unused_handshake_option __attribute__((unused));
const struct event_handshake *unused_event_handshake __attribute__((unused));
const struct event_counters *unused_event_counters __attribute__((unused));
const enum close_flag unused_close_flag __attribute__((unused));

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

/*
 * TCP state numbers, resolved by name from the running kernel's BTF by the
 * loader: the kernel's state enum is anonymous, so CO-RE cannot relocate it.
 */
const volatile __u8 tcp_close = 0;
const volatile __u8 tcp_listen = 0;
const volatile __u8 tcp_syn_sent = 0;
const volatile __u8 tcp_established = 0;
const volatile __u8 tcp_syn_recv = 0;
const volatile __u8 tcp_fin_wait1 = 0;
const volatile __u8 tcp_fin_wait2 = 0;
const volatile __u8 tcp_last_ack = 0;
const volatile __u8 tcp_closing = 0;
const volatile __u8 tcp_close_wait = 0;
const volatile __u8 tcp_time_wait = 0;
const volatile __u8 tcp_new_syn_recv = 0;

/*
 * Address of tw_timer_handler(), from /proc/kallsyms: the function of every
 * TIME_WAIT socket's timer. 0 disables TIME_WAIT tracking.
 */
const volatile __u64 tw_timer_handler_addr = 0;

/*
 * Addresses of tcp_keepalive_timer() and tcp_write_timer(), likewise: the
 * functions of a socket's keepalive and write (retransmit, zero-window
 * probe, loss probe) timers. 0 disables them.
 */
const volatile __u64 tcp_keepalive_timer_addr = 0;
const volatile __u64 tcp_write_timer_addr = 0;
/* ECONNABORTED, the errno tcp_abort() leaves (its number differs between architectures). */
const volatile __s32 econnaborted = 0;

/* LINUX_MIB_TCPKEEPALIVE and LINUX_MIB_TCPWINPROBE, from BTF. */
const volatile __u32 mib_keepalive = 0;
const volatile __u32 mib_winprobe = 0;

/* Offsets of those timers in the socket that owns them. */
const volatile __u32 keepalive_timer_offset = 0;
const volatile __u32 write_timer_offset = 0;

/* icsk_pending values (#defines in include/net/inet_connection_sock.h, so
 * not in BTF; unchanged since 2005/2017). */
#define ICSK_TIME_RETRANS 1
#define ICSK_TIME_PROBE0 3
#define ICSK_TIME_LOSS_PROBE 5

/*
 * Wake the reader only once this much data waits in the ring; the reader also
 * polls on a timer. Batching wakeups is most of the tracer's speed. 0 leaves
 * wakeups to the kernel's default (one per record the reader has not seen).
 */
const volatile __u32 wakeup_bytes = 0;

struct owner {
	__u64 cgroup_id;
	__u32 tgid;
	char comm[TASK_COMM_LEN];
};

struct sock_info {
	struct owner owner;
	__u64 state_since_ns; /* when the socket entered its current state */
};

/*
 * Per-socket owner and state clock, stored on the socket itself, for the owner filters
 * only: the filter must know the owner of a socket whose events run in
 * softirq. Created when a socket's owner is first learnt (connect, listen,
 * close in process context), freed by the kernel with the socket. BPF_F_CLONE
 * copies a listener's entry to each child it spawns, which is how an accepted
 * socket, created in softirq, inherits its server's owner. Without owner filters no
 * entry is made: allocating one for every socket, cloning it into every
 * accepted one and freeing them through RCU cost about 1.5 us a connection
 * under churn (perf); user space knows each socket's owner and state times
 * from its earlier events (and an accepted socket's from its listener's).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_info);
} socks SEC(".maps");

/*
 * A socket's owner, stored on it, without owner filters, for its own later events: a
 * listener's (its close, its RSTs, its SYN-ACK retransmits), and that of a
 * socket open when tracing starts. Not cloned: an accepted socket's owner
 * user space takes from its listener's events.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct owner);
} kept_owners SEC(".maps");

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

/* The parts of a socket's identity the filters look at. */
struct sock_id {
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	/*
	 * No remote port, and no listener: tcp_disconnect() (a close() with
	 * SO_LINGER {1, 0}) zeroes it before the socket's destroy. (So is a
	 * socket that never connected, or one becoming a listener.)
	 */
	bool remote_zeroed;
};

struct tw_owner {
	struct owner owner;
	bool armed; /* a TIME_WAIT socket took over the cookie */
};

/*
 * Owners by cookie, for the owner filters where a program reaches a socket only as an
 * address (the timer tracepoints) and cannot use its storage, and for
 * TIME_WAIT sockets, separate storage-less kernel objects that keep only the
 * cookie. (Without owner filters, user space knows the owner from the socket's
 * earlier events.) Added when an owner is learnt; removed when the TIME_WAIT
 * timer fires, or at destroy when no TIME_WAIT followed. LRU: a TIME_WAIT
 * ended early (cancelled) leaves its entry to be evicted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tw_owner);
} cookie_owners SEC(".maps");

/* The TIME_WAIT timer stopped last on this CPU, to spot the RST that did it. */
struct tw_cancel {
	__u64 ts_ns;
	__u64 cookie;
	struct sock_id id;
	struct owner owner;
	bool has_owner;
	__u8 substate;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tw_cancel);
} tw_cancels SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/*
 * Records dropped because the ring buffer was full, by kind of record (enum
 * event_type); one slot per CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_TYPE_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

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
	if (filter_port_count && !id->remote_zeroed && !port_listed(filter_ports, filter_port_count, id->sport) &&
	    !port_listed(filter_ports, filter_port_count, id->dport))
		return false;
	if (filter_lport_count && !port_listed(filter_lports, filter_lport_count, id->sport))
		return false;
	if (filter_rport_count && !id->remote_zeroed && !port_listed(filter_rports, filter_rport_count, id->dport))
		return false;
	return true;
}

static __always_inline bool owner_wanted(const struct owner *o)
{
	if (!owner_filtered())
		return true;
	return o && ids_wanted(o->tgid, o->cgroup_id);
}

/* Reads family, ports and netns of a full socket, TIME_WAIT or request sock. */
static __always_inline void read_sock_id(const struct sock *sk, struct sock_id *id)
{
	/*
	 * tp_btf arguments are BTF pointers: plain field accesses compile to
	 * direct, CO-RE relocated loads, far cheaper than probe-read helpers.
	 */
	id->family = sk->__sk_common.skc_family;
	id->netns = sk->__sk_common.skc_net.net->ns.inum;
	id->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	id->sport = sk->__sk_common.skc_num;
	id->remote_zeroed = !id->dport && sk->__sk_common.skc_state != tcp_listen;
	/*
	 * skc_num is already 0 on "-> CLOSE" (the port was released), but a
	 * full socket still has inet_sport. TIME_WAIT and request socks keep
	 * skc_num, and have no inet_sport to read.
	 */
	if (!id->sport) {
		__u8 state = sk->__sk_common.skc_state;

		/* Beyond struct sock: the verifier wants a probe read here. */
		if (state != tcp_time_wait && state != tcp_new_syn_recv)
			id->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	}
}

static __always_inline void read_sock_addrs(const struct sock *sk, struct event *e)
{
	if (e->family == 4) {
		*(__be32 *)e->saddr = sk->__sk_common.skc_rcv_saddr;
		*(__be32 *)e->daddr = sk->__sk_common.skc_daddr;
	} else {
		*(struct in6_addr *)e->saddr = sk->__sk_common.skc_v6_rcv_saddr;
		*(struct in6_addr *)e->daddr = sk->__sk_common.skc_v6_daddr;
	}
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

static __always_inline void count_lost(__u8 type)
{
	__u32 key = type;
	__u64 *n = bpf_map_lookup_elem(&lost, &key);

	if (n)
		*n += 1;
}

/*
 * The socket's cookie, made now if it has none, except for listeners: some
 * kernels (Debian's 6.1 and 6.12 among them) copy a listener's cookie into
 * every child it clones, so giving a listener a cookie would give all its
 * accepted sockets the same one. A listener shows the cookie it has, often 0.
 */
static __always_inline __u64 socket_cookie(const struct sock *sk, bool listener)
{
	if (listener)
		return sk->__sk_common.skc_cookie.counter;
	return bpf_get_socket_cookie((void *)sk);
}

/*
 * Reserves a record of size bytes (a struct event and its tail) and fills what
 * every event carries; NULL if the ring is full. sk is NULL for an RST that
 * belongs to no socket.
 */
static __always_inline struct event *new_tailed_event(__u64 ts_ns, __u32 size, __u8 tail, __u8 type,
						      const struct sock *sk, bool listener,
						      const struct sock_id *id, const struct owner *o,
						      __u8 state)
{
	struct event *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e) {
		count_lost(type);
		return NULL;
	}
	e->ts_ns = ts_ns;
	e->cookie = sk ? socket_cookie(sk, listener) : 0;
	e->netns = id->netns;
	e->family = id->family == AF_INET6 ? 6 : 4;
	e->sport = id->sport;
	e->dport = id->dport;
	e->type = type;
	e->state = state;
	e->old_state = 0;
	e->flags = 0;
	e->reason = 0;
	e->prev_state_ns = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	e->window = 0;
	__builtin_memset(&e->timer, 0, sizeof(e->timer));
	e->substate = 0;
	e->timer_jiffies = 0;
	e->seq = 0;
	e->tsval = 0;
	e->tcp_flags = 0;
	e->aux_flags = 0;
	e->payload_len = 0;
	e->rcv_nxt = 0;
	e->ack_seq = 0;
	e->tail = tail;
	if (o) {
		e->flags |= EVENT_FLAG_OWNER_KNOWN;
		e->pid = o->tgid;
		e->cgroup_id = o->cgroup_id;
		__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
	} else {
		e->pid = 0;
		e->cgroup_id = 0;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	return e;
}

static __always_inline struct event *new_event_at(__u64 ts_ns, __u8 type, const struct sock *sk, bool listener,
						  const struct sock_id *id, const struct owner *o,
						  __u8 state)
{
	return new_tailed_event(ts_ns, sizeof(struct event), TAIL_NONE, type, sk, listener, id, o, state);
}

static __always_inline struct event *new_event(__u8 type, const struct sock *sk, bool listener,
					       const struct sock_id *id, const struct owner *o,
					       __u8 state)
{
	return new_event_at(bpf_ktime_get_ns(), type, sk, listener, id, o, state);
}

static __always_inline void submit(struct event *e)
{
	__u64 flags = 0, avail;

	if (wakeup_bytes) {
		/*
		 * Wake the reader only on the record that crosses the threshold:
		 * waking it on every record above it costs more than it saves.
		 */
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = avail >= wakeup_bytes && avail < wakeup_bytes + sizeof(*e) ?
				BPF_RB_FORCE_WAKEUP :
				BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/*
 * Children whose LISTEN -> SYN_RECV is held back, by socket address, with the
 * transition's time: older kernels (Debian's 6.1 and 6.12 among them)
 * announce the child before they give it its remote port and its cookie
 * (copied from the request sock), so its identity is right only at its next
 * event, which reports the birth first. Every child has one: its destroy at
 * the latest.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} births SEC(".maps");

/*
 * Births held and not yet reported: while there are none, which is nearly
 * always (a child's next event follows its birth in the same softirq),
 * events leave before any map lookup.
 */
__u64 births_held = 0;

/* Holds a child's birth until its next event; with the table full, it is reported at once. */
static __always_inline bool hold_birth(const struct sock *sk, __u64 now)
{
	__u64 key = (__u64)sk;

	if (bpf_map_update_elem(&births, &key, &now, BPF_NOEXIST))
		return false;
	__sync_fetch_and_add(&births_held, 1);
	return true;
}

/* Reports sk's held-back birth, if any, with the identity it has now. */
static __always_inline void flush_birth(const struct sock *sk, const struct sock_id *id, const struct owner *o)
{
	const struct tcp_sock *tp = (const void *)sk;
	__u64 key = (__u64)sk, *born, born_ns;
	struct event *e;

	if (!births_held)
		return;
	born = bpf_map_lookup_elem(&births, &key);
	if (!born)
		return;
	born_ns = *born;
	/* Whoever deletes it reports it: two CPUs may get here at once. */
	if (bpf_map_delete_elem(&births, &key))
		return;
	__sync_fetch_and_add(&births_held, -1);
	e = new_event_at(born_ns, EVENT_STATE, sk, false, id, o, tcp_syn_recv);
	if (!e)
		return;
	e->old_state = tcp_listen;
	read_sock_addrs(sk, e);
	/* Its SYN, which may have ended a TIME_WAIT (see the tracker). */
	e->seq = BPF_CORE_READ(tp, rcv_nxt) - 1 - (__u32)BPF_CORE_READ(tp, bytes_received);
	e->flags |= EVENT_FLAG_SEQ_KNOWN;
	if (BPF_CORE_READ(tp, rx_opt.ts_recent_stamp)) {
		e->tsval = BPF_CORE_READ(tp, rx_opt.ts_recent);
		e->flags |= EVENT_FLAG_TSVAL_KNOWN;
	}
	submit(e);
}

/*
 * Reads a socket's identity and kept owner (TIME_WAIT and request socks have
 * no storage: the helper checks) for a one-socket event, and tells whether
 * the filters want it.
 */
static __always_inline bool sock_wanted(const struct sock *sk, struct sock_id *id, struct owner **o)
{
	read_sock_id(sk, id);
	if (!id_wanted(id))
		return false;
	*o = kept_owner(sk);
	return owner_wanted(*o);
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
 * Reserves a one-socket event (retransmit, resets, destroy) of size bytes,
 * with its identity filled, if the filters want it; the caller submits it.
 * by_holder: a socket that keeps no owner gets the task holding it, if
 * closed_by_owner() says that task owns it.
 */
static __always_inline struct event *new_sock_event(const struct sock *sk, __u8 type, __u32 size, __u8 tail,
						    bool by_holder)
{
	struct owner *o, holder;
	struct sock_id id = {};
	struct event *e;
	__u8 state;

	if (!sock_wanted(sk, &id, &o))
		return NULL;
	if (!o && by_holder && closed_by_owner(sk)) {
		current_owner(&holder);
		o = &holder;
	}
	flush_birth(sk, &id, o);
	state = sk->__sk_common.skc_state;
	e = new_tailed_event(bpf_ktime_get_ns(), size, tail, type, sk, state == tcp_listen, &id, o, state);
	if (e)
		read_sock_addrs(sk, e);
	return e;
}

/* Emits a one-socket event without a tail if the filters want it. */
static __always_inline void emit_sock_event(const struct sock *sk, __u8 type, __u32 reason,
					    bool has_reason)
{
	struct event *e = new_sock_event(sk, type, sizeof(struct event), TAIL_NONE, false);

	if (!e)
		return;
	if (has_reason) {
		e->reason = reason;
		e->flags |= EVENT_FLAG_HAS_REASON;
	}
	submit(e);
}

/*
 * The options that make a socket's close an abort, as it moves to CLOSE:
 * SO_LINGER {1, 0} (close() resets it, through tcp_disconnect()) and
 * TCP_LINGER2 < 0 (the orphan is reset instead of kept in FIN_WAIT2). The
 * RST's reason does not always tell them (TCP_STATE, TCP_ABORT_ON_DATA have
 * other causes too), and kernels before 6.10 give none.
 */
static __always_inline __u8 close_flags(const struct sock *sk)
{
	__u64 linger = 1UL << bpf_core_enum_value(enum sock_flags, SOCK_LINGER);
	__u8 flags = CLOSE_FLAG_READ;

	if ((sk->__sk_common.skc_flags & linger) && !sk->sk_lingertime)
		flags |= CLOSE_FLAG_LINGER_ZERO;
	/* Beyond struct sock: the verifier wants a probe read here. */
	if (BPF_CORE_READ((const struct tcp_sock *)sk, linger2) < 0)
		flags |= CLOSE_FLAG_LINGER2_NEGATIVE;
	return flags;
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

/* The terms the handshake settled. */
static __always_inline void read_handshake(const struct sock *sk, struct tcp_handshake *h)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	__u8 options = 0;

	__builtin_memset(h, 0, sizeof(*h));
	if (!tp)
		return;
	h->srtt_us = tp->srtt_us >> 3;
	h->retrans = tp->total_retrans;
	h->mss_in_use = tp->mss_cache;
	h->mss_advertised = tp->advmss;
	h->mss_received = tp->rx_opt.mss_clamp;
	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.wscale_ok)) {
		options |= HANDSHAKE_WSCALE;
		h->snd_wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.snd_wscale);
		h->rcv_wscale = BPF_CORE_READ_BITFIELD(tp, rx_opt.rcv_wscale);
	}
	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.sack_ok))
		options |= HANDSHAKE_SACK;
	if (BPF_CORE_READ_BITFIELD(tp, rx_opt.tstamp_ok))
		options |= HANDSHAKE_TIMESTAMPS;
	/* Bit 0: TCP_ECN_OK, since AccECN (6.18) TCP_ECN_MODE_RFC3168. */
	if (tp->ecn_flags & 1)
		options |= HANDSHAKE_ECN;
	if (BPF_CORE_READ_BITFIELD(tp, syn_data_acked))
		options |= HANDSHAKE_FASTOPEN;
	h->options = options;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, int old_state, int new_state)
{
	struct sock_info *info = NULL;
	struct owner *o = NULL, context_owner;
	struct event_handshake *eh;
	struct sock_id id = {};
	__u64 now, prev_ns = 0;
	bool prev_known = false, listener, in_context;
	struct event *e;
	__u32 tgid;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	read_sock_id(sk, &id);
	if (!id_wanted(&id))
		return 0;

	now = bpf_ktime_get_ns();
	in_context = owner_in_context(sk, new_state);
	if (owner_filtered()) {
		info = bpf_sk_storage_get(&socks, (void *)sk, NULL, 0);
		if (in_context) {
			tgid = bpf_get_current_pid_tgid() >> 32;
			if (!ids_wanted(tgid, bpf_get_current_cgroup_id()))
				return 0;
			if (!info)
				info = bpf_sk_storage_get(&socks, (void *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
			if (info && info->owner.tgid != tgid)
				current_owner(&info->owner);
		}
		if (info && info->owner.tgid)
			o = &info->owner;
		if (!owner_wanted(o))
			return 0;
		/* Keep a state clock even for sockets whose owner is not known. */
		if (!info)
			info = bpf_sk_storage_get(&socks, (void *)sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	} else if (in_context) {
		/* A kept owner is brought up to date (the socket may have changed hands). */
		o = new_state == tcp_listen ? keep_owner(sk) : kept_owner(sk);
		if (!o)
			o = &context_owner;
		current_owner(o);
	} else {
		o = kept_owner(sk); /* a listener closing */
	}
	if (old_state == tcp_listen && new_state == tcp_syn_recv) {
		/* A new child (its storage a copy of its listener's): see hold_birth. */
		if (info)
			info->state_since_ns = now;
		if (hold_birth(sk, now))
			return 0;
	}
	flush_birth(sk, &id, o);
	/* Owners by cookie, for the TIME_WAIT and timer programs under the owner filters. */
	if (o && owner_filtered() && (in_context || old_state == tcp_listen))
		remember_owner(sk, o);
	if (info) {
		if (info->state_since_ns) {
			prev_ns = now - info->state_since_ns;
			prev_known = true;
		}
		info->state_since_ns = now;
	}

	/* A child's first event has old_state LISTEN: it is no listener. */
	listener = new_state == tcp_listen || (old_state == tcp_listen && new_state == tcp_close);
	if (new_state == tcp_established) {
		eh = (struct event_handshake *)new_tailed_event(now, sizeof(*eh), TAIL_HANDSHAKE, EVENT_STATE, sk,
								listener, &id, o, new_state);
		if (eh)
			read_handshake(sk, &eh->handshake);
		e = &eh->event;
	} else {
		e = new_event_at(now, EVENT_STATE, sk, listener, &id, o, new_state);
	}
	if (!e)
		return 0;
	e->old_state = old_state;
	if (new_state == tcp_close)
		e->aux_flags = close_flags(sk);
	if (prev_known) {
		e->prev_state_ns = prev_ns;
		e->flags |= EVENT_FLAG_PREV_STATE_KNOWN;
	}
	read_sock_addrs(sk, e);
	submit(e);
	return 0;
}

/* Since about 6.17 the tracepoint also fires for failed retransmits, with err. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (err)
		return 0;
	emit_sock_event(sk, EVENT_RETRANSMIT, 0, false);
	return 0;
}

/* Kernels whose tcp_retransmit_skb has no err argument (only sent ones fire). */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(handle_retransmit_noerr, const struct sock *sk, const struct sk_buff *skb)
{
	emit_sock_event(sk, EVENT_RETRANSMIT, 0, false);
	return 0;
}

/* An RST answering a segment that matched no socket: the tuple comes from it. */
static __always_inline void emit_reset_for_segment(const struct sk_buff *skb, __u32 reason,
						   bool has_reason)
{
	unsigned char *head = skb->head;
	unsigned char *nh = head + skb->network_header;
	unsigned char *th = head + skb->transport_header;
	struct sock_id id = {};
	__u8 version = 0;
	__be16 port = 0;
	struct event *e;

	/* No owner without a socket: such RSTs never pass an owner filter. */
	if (owner_filtered())
		return;
	bpf_probe_read_kernel(&version, 1, nh);
	version >>= 4;
	if (version != 4 && version != 6)
		return;
	id.family = version == 6 ? AF_INET6 : AF_INET;
	/* The segment came in: its destination is our side. */
	bpf_probe_read_kernel(&port, 2, th + TCP_DPORT_OFF);
	id.sport = bpf_ntohs(port);
	bpf_probe_read_kernel(&port, 2, th + TCP_SPORT_OFF);
	id.dport = bpf_ntohs(port);
	id.netns = skb->dev->nd_net.net->ns.inum;
	if (!id_wanted(&id))
		return;
	e = new_event(EVENT_RESET_SENT, NULL, false, &id, NULL, 0);
	if (!e)
		return;
	e->flags |= EVENT_FLAG_NO_SOCKET;
	if (has_reason) {
		e->reason = reason;
		e->flags |= EVENT_FLAG_HAS_REASON;
	}
	if (version == 4) {
		bpf_probe_read_kernel(e->saddr, 4, nh + IPV4_DADDR_OFF);
		bpf_probe_read_kernel(e->daddr, 4, nh + IPV4_SADDR_OFF);
	} else {
		bpf_probe_read_kernel(e->saddr, 16, nh + IPV6_DADDR_OFF);
		bpf_probe_read_kernel(e->daddr, 16, nh + IPV6_SADDR_OFF);
	}
	submit(e);
}

/*
 * An RST a listener sent (for no connection of its own): its remote side is
 * that of the segment it answers, which tells whose TIME_WAIT socket it may
 * reach.
 */
static __always_inline void emit_listener_reset(const struct sock *sk, const struct sk_buff *skb,
						__u32 reason, bool has_reason)
{
	unsigned char *head = skb->head;
	unsigned char *nh = head + skb->network_header;
	unsigned char *th = head + skb->transport_header;
	struct sock_id id = {};
	__be16 port = 0;
	struct owner *o;
	struct event *e;

	if (!sock_wanted(sk, &id, &o))
		return;
	e = new_event(EVENT_RESET_SENT, sk, true, &id, o, tcp_listen);
	if (!e)
		return;
	read_sock_addrs(sk, e);
	if (has_reason) {
		e->reason = reason;
		e->flags |= EVENT_FLAG_HAS_REASON;
	}
	bpf_probe_read_kernel(&port, 2, th + TCP_SPORT_OFF);
	e->dport = bpf_ntohs(port);
	if (e->family == 4)
		bpf_probe_read_kernel(e->daddr, 4, nh + IPV4_SADDR_OFF);
	else
		bpf_probe_read_kernel(e->daddr, 16, nh + IPV6_SADDR_OFF);
	submit(e);
}

static __always_inline void emit_reset_sent(const struct sock *sk, const struct sk_buff *skb,
					    __u32 reason, bool has_reason)
{
	if (sk && skb && sk->__sk_common.skc_state == tcp_listen)
		emit_listener_reset(sk, skb, reason, has_reason);
	else if (sk)
		emit_sock_event(sk, EVENT_RESET_SENT, reason, has_reason);
	else if (skb)
		emit_reset_for_segment(skb, reason, has_reason);
}

/* Since 6.10: reason argument; sk may be NULL or a TIME_WAIT minisock. */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	emit_reset_sent(sk, skb, reason, true);
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(handle_send_reset_noreason, const struct sock *sk, const struct sk_buff *skb)
{
	emit_reset_sent(sk, skb, 0, false);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(handle_receive_reset, struct sock *sk)
{
	emit_sock_event(sk, EVENT_RESET_RECEIVED, 0, false);
	return 0;
}

/*
 * Sockets in a zero-window episode (a zero-window probe went out), by
 * cookie: tcp_probe reports when the peer's window opens again. Added by the
 * write timer, removed when the window opens; LRU for sockets that close.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} zero_window SEC(".maps");

/*
 * Entries added to zero_window and not yet removed (evicted ones stay
 * counted): while there are none, tcp_probe, which runs for every segment
 * received, leaves before any map lookup.
 */
__u64 zero_window_entries = 0;

static __always_inline void forget_zero_window(__u64 cookie)
{
	if (!bpf_map_delete_elem(&zero_window, &cookie))
		__sync_fetch_and_add(&zero_window_entries, -1);
}

/* What the socket carried, as tcp_get_info() tells it. */
static __always_inline void read_counters(const struct sock *sk, struct tcp_counters *c)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	__u64 interval;

	__builtin_memset(c, 0, sizeof(*c));
	if (!tp)
		return;
	c->bytes_acked = tp->bytes_acked;
	c->bytes_received = tp->bytes_received;
	c->segs_out = tp->segs_out;
	c->segs_in = tp->segs_in;
	c->total_retrans = tp->total_retrans;
	c->srtt_us = tp->srtt_us >> 3;
	c->min_rtt_us = tp->rtt_min.s[0].v;
	interval = tp->rate_interval_us;
	if (interval)
		c->delivery_rate = (__u64)tp->rate_delivered * tp->mss_cache * 1000000 / interval;
}

/*
 * The socket's storage goes with it; its TIME_WAIT owner unless one
 * followed. A close() destroys it in the closing task: a listener's destroy
 * has another cookie than its events (see socket_cookie), and only that
 * task tells whose it was.
 */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(handle_destroy, struct sock *sk)
{
	struct event_counters *ec;
	struct tw_owner *two;
	__u64 cookie;

	ec = (struct event_counters *)new_sock_event(sk, EVENT_DESTROY, sizeof(*ec), TAIL_COUNTERS, true);
	if (ec) {
		read_counters(sk, &ec->counters);
		submit(&ec->event);
	}
	cookie = sk->__sk_common.skc_cookie.counter;
	if (zero_window_entries)
		forget_zero_window(cookie);
	if (!owner_filtered())
		return 0;
	two = bpf_map_lookup_elem(&cookie_owners, &cookie);
	if (two && !two->armed)
		bpf_map_delete_elem(&cookie_owners, &cookie);
	return 0;
}

/*
 * TIME_WAIT sockets, seen through their timer (tw_timer, handler
 * tw_timer_handler) on the timer tracepoints, which fire for every kernel
 * timer: each program leaves at once unless the timer is a TIME_WAIT one.
 * The TIME_WAIT socket is reached with container_of and probe reads (its
 * pointer is not one the verifier can follow).
 */
static __always_inline const struct inet_timewait_sock *timer_tw(const struct timer_list *timer)
{
	if (!tw_timer_handler_addr || (__u64)timer->function != tw_timer_handler_addr)
		return NULL;
	return (const void *)timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer);
}

/*
 * A socket's identity and addresses through probe reads, for sockets reached
 * by address (from their timer), which the verifier cannot follow.
 */
static __always_inline void read_common_id(const struct sock_common *skc, struct sock_id *id)
{
	id->family = BPF_CORE_READ(skc, skc_family);
	id->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
	id->sport = BPF_CORE_READ(skc, skc_num);
	id->dport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
}

static __always_inline void read_common_addrs(const struct sock_common *skc, struct event *e)
{
	if (e->family == 4) {
		BPF_CORE_READ_INTO((__be32 *)e->saddr, skc, skc_rcv_saddr);
		BPF_CORE_READ_INTO((__be32 *)e->daddr, skc, skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)e->saddr, skc, skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)e->daddr, skc, skc_v6_daddr);
	}
}

/*
 * Reserves a TIME_WAIT event if the filters want it. The TIME_WAIT socket
 * has the cookie of the socket it replaced, and that socket's owner.
 */
static __always_inline struct event *new_tw_event(__u8 type, const struct inet_timewait_sock *tw,
						  __u64 cookie, const struct sock_id *id,
						  const struct owner *o)
{
	struct event *e;

	if (!id_wanted(id) || !owner_wanted(o))
		return NULL;
	e = new_event(type, NULL, false, id, o, tcp_time_wait);
	if (!e)
		return NULL;
	e->cookie = cookie;
	e->substate = BPF_CORE_READ(tw, tw_substate);
	read_common_addrs(&tw->__tw_common, e);
	return e;
}

static __always_inline struct owner *tw_owner_of(__u64 cookie, bool arm)
{
	struct tw_owner *two;

	if (!owner_filtered())
		return NULL;
	two = bpf_map_lookup_elem(&cookie_owners, &cookie);
	if (!two)
		return NULL;
	if (arm)
		two->armed = true;
	return &two->owner;
}

/*
 * A socket's keepalive and write timers: their owner is reached with
 * container_of and probe reads, as for TIME_WAIT. The handler's effect is
 * read from the socket before (timer_expire_entry) and after
 * (timer_expire_exit) it ran: the two fire back to back on one CPU.
 */
struct tcp_timer_slot {
	__u64 timer;
	__u64 entry_ns;
	__u8 pending;
	__u8 probes_before;
	__u8 state_before;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_timer_slot);
} tcp_timer_slots SEC(".maps");

/*
 * The socket whose keepalive or write timer this is, and which of the two.
 * The timers' offsets in the socket are found in the kernel's BTF by the
 * loader, which knows both layouts (before and after the late-2025 rework).
 */
static __always_inline const struct sock *timer_sock(const struct timer_list *timer, __u8 *kind)
{
	__u64 fn = (__u64)timer->function;

	if (fn && fn == tcp_keepalive_timer_addr) {
		*kind = TCP_TIMER_KEEPALIVE;
		return (const void *)timer - keepalive_timer_offset;
	}
	if (fn && fn == tcp_write_timer_addr) {
		*kind = TCP_TIMER_WRITE;
		return (const void *)timer - write_timer_offset;
	}
	return NULL;
}

static __always_inline void tcp_timer_entry(const struct timer_list *timer)
{
	const struct inet_connection_sock *icsk;
	struct tcp_timer_slot *slot;
	__u32 zero = 0;
	__u8 kind = 0;

	icsk = (const void *)timer_sock(timer, &kind);
	if (!icsk)
		return;
	slot = bpf_map_lookup_elem(&tcp_timer_slots, &zero);
	if (!slot)
		return;
	slot->timer = (__u64)timer;
	slot->entry_ns = bpf_ktime_get_ns();
	slot->pending = BPF_CORE_READ(icsk, icsk_pending);
	slot->probes_before = BPF_CORE_READ(icsk, icsk_probes_out);
	slot->state_before = BPF_CORE_READ((const struct sock *)icsk, __sk_common.skc_state);
}

SEC("tp_btf/timer_expire_exit")
int BPF_PROG(handle_timer_expire_exit, struct timer_list *timer)
{
	const struct inet_connection_sock *icsk;
	const struct tcp_sock *tp;
	const struct sock *sk;
	struct tcp_timer_slot *slot;
	struct sock_id id = {};
	struct owner *o = NULL;
	__u64 cookie, now_j;
	__u32 zero = 0;
	struct event *e;
	__u8 kind = 0, state;
	bool keepalive_on, probed;

	sk = timer_sock(timer, &kind);
	if (!sk)
		return 0;
	slot = bpf_map_lookup_elem(&tcp_timer_slots, &zero);
	if (!slot || slot->timer != (__u64)timer)
		return 0;
	slot->timer = 0;
	icsk = (const void *)sk;
	tp = (const void *)sk;
	state = BPF_CORE_READ(sk, __sk_common.skc_state);
	keepalive_on = BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_KEEPOPEN));
	if (kind == TCP_TIMER_KEEPALIVE) {
		/* sk_timer doubles as the FIN_WAIT2 and SYN-ACK timers: skip those. */
		if (!keepalive_on || slot->state_before == tcp_fin_wait2 || slot->state_before == tcp_listen)
			return 0;
	} else if (slot->pending != ICSK_TIME_RETRANS && slot->pending != ICSK_TIME_PROBE0 &&
		   slot->pending != ICSK_TIME_LOSS_PROBE) {
		return 0; /* nothing pending, or a reordering timeout */
	}

	read_common_id(&sk->__sk_common, &id);
	if (!id.sport) /* an aborted socket has let its port go */
		id.sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	if (owner_filtered())
		o = tw_owner_of(cookie, false);
	if (!id_wanted(&id) || !owner_wanted(o))
		return 0;
	e = new_event(EVENT_TCP_TIMER, NULL, false, &id, o, state);
	if (!e)
		return 0;
	e->cookie = cookie;
	read_common_addrs(&sk->__sk_common, e);
	now_j = bpf_jiffies64();
	e->old_state = slot->state_before;
	e->timer.entry_ns = slot->entry_ns;
	e->timer.kind = kind;
	e->timer.pending = slot->pending;
	e->timer.probes_before = slot->probes_before;
	e->timer.probes_after = BPF_CORE_READ(icsk, icsk_probes_out);
	e->timer.backoff = BPF_CORE_READ(icsk, icsk_backoff);
	e->timer.rto_jiffies = BPF_CORE_READ(icsk, icsk_rto);
	e->timer.user_timeout_ms = BPF_CORE_READ(icsk, icsk_user_timeout);
	e->timer.idle_jiffies = (__u32)now_j - BPF_CORE_READ(tp, rcv_tstamp);
	e->timer.keepalive_time = BPF_CORE_READ(tp, keepalive_time);
	e->timer.keepalive_intvl = BPF_CORE_READ(tp, keepalive_intvl);
	e->timer.keepalive_probes = BPF_CORE_READ(tp, keepalive_probes);
	e->timer.keepalive_on = keepalive_on;
	e->timer.snd_wnd = BPF_CORE_READ(tp, snd_wnd);
	if ((long)(timer->expires - now_j) > 0 && state != tcp_close)
		e->timer.next_jiffies = timer->expires - now_j;
	probed = e->timer.probes_after > slot->probes_before;
	submit(e);
	if (slot->pending == ICSK_TIME_PROBE0 && probed) {
		__u8 one = 1;

		if (!bpf_map_update_elem(&zero_window, &cookie, &one, BPF_NOEXIST))
			__sync_fetch_and_add(&zero_window_entries, 1);
	}
	return 0;
}

/*
 * Every segment received in ESTABLISHED; used only to see a zero window
 * reopen, so it leaves at once for sockets not in a zero-window episode.
 */
SEC("tp_btf/tcp_probe")
int BPF_PROG(handle_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	struct sock_id id = {};
	struct owner *o;
	struct event *e;
	__be16 wnd = 0;

	if (!zero_window_entries || !cookie || !bpf_map_lookup_elem(&zero_window, &cookie))
		return 0;
	/* The window as this segment advertises it, before tcp_ack() applies it. */
	bpf_probe_read_kernel(&wnd, sizeof(wnd), skb->head + skb->transport_header + TCP_WINDOW_OFF);
	if (!wnd)
		return 0;
	forget_zero_window(cookie);
	if (!sock_wanted(sk, &id, &o))
		return 0;
	e = new_event(EVENT_WINDOW_OPEN, sk, false, &id, o, sk->__sk_common.skc_state);
	if (!e)
		return 0;
	read_sock_addrs(sk, e);
	e->timer.snd_wnd = bpf_ntohs(wnd);
	submit(e);
	return 0;
}

/*
 * A SYN-ACK retransmitted for a request sock (a connection not yet
 * accepted: it has no full socket, no storage, and the listener's owner).
 */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(handle_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	struct owner *o = kept_owner(sk);
	struct sock_id id = {};
	struct event *e;

	id.family = req->__req_common.skc_family;
	id.netns = req->__req_common.skc_net.net->ns.inum;
	id.sport = req->__req_common.skc_num;
	id.dport = bpf_ntohs(req->__req_common.skc_dport);
	if (!id_wanted(&id) || !owner_wanted(o))
		return 0;
	e = new_event(EVENT_RETRANSMIT, NULL, false, &id, o, tcp_new_syn_recv);
	if (!e)
		return 0;
	e->cookie = bpf_get_socket_cookie((void *)req);
	read_common_addrs(&req->__req_common, e);
	submit(e);
	return 0;
}

SEC("tp_btf/timer_start")
int BPF_PROG(handle_timer_start, struct timer_list *timer)
{
	const struct inet_timewait_sock *tw = timer_tw(timer);
	struct sock_id id = {};
	struct event *e;
	__u64 cookie;

	if (!tw)
		return 0;
	cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	read_common_id(&tw->__tw_common, &id);
	e = new_tw_event(EVENT_TW_START, tw, cookie, &id, tw_owner_of(cookie, true));
	if (!e)
		return 0;
	e->timer_jiffies = timer->expires - bpf_jiffies64();
	submit(e);
	return 0;
}

SEC("tp_btf/timer_expire_entry")
int BPF_PROG(handle_timer_expire, struct timer_list *timer)
{
	const struct inet_timewait_sock *tw = timer_tw(timer);
	struct sock_id id = {};
	struct event *e;
	__u64 cookie;

	if (!tw) {
		tcp_timer_entry(timer);
		return 0;
	}
	cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	read_common_id(&tw->__tw_common, &id);
	e = new_tw_event(EVENT_TW_EXPIRE, tw, cookie, &id, tw_owner_of(cookie, false));
	if (e) {
		/* When it was last armed: expires minus the timeout (user space). */
		e->timer_jiffies = (__u32)(timer->expires - bpf_jiffies64());
		e->aux_flags |= TW_FLAG_EXPIRES_KNOWN;
		submit(e);
	}
	bpf_map_delete_elem(&cookie_owners, &cookie);
	return 0;
}

/*
 * timer_cancel fires before every expiry (the timer is due then: skipped
 * here) and before a re-arm into another wheel bucket (a timer_start of the
 * same timer follows at once: user space pairs them). Anything else is the
 * TIME_WAIT socket being killed early.
 */
/*
 * Whether nothing holds the namespace any more: the kernel tears it down,
 * and the TIME_WAIT sockets it stops then are purged (inet_twsk_purge). The
 * count is never 0 in a live namespace, whose inode a new one may reuse at
 * once after its death.
 */
static __always_inline bool netns_dying(const struct net *net)
{
	int refs;

	if (bpf_core_field_exists(net->ns.__ns_ref))
		refs = BPF_CORE_READ(net, ns.__ns_ref.refs.counter);
	else if (bpf_core_field_exists(net->ns.count))
		refs = BPF_CORE_READ(net, ns.count.refs.counter);
	else
		refs = BPF_CORE_READ(net, count.refs.counter);
	return refs == 0;
}

SEC("tp_btf/timer_cancel")
int BPF_PROG(handle_timer_cancel, struct timer_list *timer)
{
	const struct inet_timewait_sock *tw = timer_tw(timer);
	struct tw_cancel *slot;
	struct owner *o;
	__u32 zero = 0;
	struct event *e;
	__u64 cookie;

	if (!tw || (long)(timer->expires - bpf_jiffies64()) <= 0)
		return 0;
	cookie = BPF_CORE_READ(tw, __tw_common.skc_cookie.counter);
	slot = bpf_map_lookup_elem(&tw_cancels, &zero);
	if (!slot)
		return 0;
	read_common_id(&tw->__tw_common, &slot->id);
	o = tw_owner_of(cookie, false);
	e = new_tw_event(EVENT_TW_CANCEL, tw, cookie, &slot->id, o);
	if (!e)
		return 0;
	/* What a new SYN on the 4-tuple is compared with (RFC 6191). */
	e->seq = BPF_CORE_READ(tw, __tw_common.skc_tw_rcv_nxt);
	e->flags |= EVENT_FLAG_SEQ_KNOWN;
	e->timer_jiffies = (__u32)(timer->expires - bpf_jiffies64());
	e->aux_flags |= TW_FLAG_EXPIRES_KNOWN;
	if (netns_dying(BPF_CORE_READ(tw, __tw_common.skc_net.net)))
		e->aux_flags |= TW_FLAG_NETNS_DYING;
	if (BPF_CORE_READ((struct tcp_timewait_sock *)tw, tw_ts_recent_stamp)) {
		e->tsval = BPF_CORE_READ((struct tcp_timewait_sock *)tw, tw_ts_recent);
		e->flags |= EVENT_FLAG_TSVAL_KNOWN;
	}
	slot->ts_ns = e->ts_ns;
	slot->cookie = cookie;
	slot->substate = e->substate;
	slot->has_owner = o != NULL;
	if (o)
		slot->owner = *o;
	submit(e);
	return 0;
}

/*
 * An RST that kills a TIME_WAIT socket (tcp_rfc1337 = 0) is freed right after
 * the socket's timer is cancelled, on the same CPU: the first segment of the
 * TIME_WAIT socket's 4-tuple freed there says what stopped it.
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(handle_kfree_skb, struct sk_buff *skb)
{
	struct owner owner, *o = NULL;
	struct tw_cancel *slot;
	__be16 ports[2] = {};
	unsigned char *th;
	__u32 zero = 0;
	__u8 tcp_flags = 0;
	struct event *e;

	slot = bpf_map_lookup_elem(&tw_cancels, &zero);
	if (!slot || !slot->ts_ns)
		return 0;
	/* Generous, for slow (emulated) machines: the ports must match too. */
	if (bpf_ktime_get_ns() - slot->ts_ns > 1000000000) {
		slot->ts_ns = 0;
		return 0;
	}
	th = skb->head + skb->transport_header;
	bpf_probe_read_kernel(&ports, sizeof(ports), th);
	if (bpf_ntohs(ports[0]) != slot->id.dport || bpf_ntohs(ports[1]) != slot->id.sport)
		return 0;
	slot->ts_ns = 0;
	bpf_probe_read_kernel(&tcp_flags, 1, th + TCP_FLAGS_OFF);
	if (!(tcp_flags & TCP_FLAG_RST))
		return 0;
	/*
	 * Through the stack: clang may turn the conditional pointer into
	 * arithmetic 6.1's verifier takes for a scalar.
	 */
	if (slot->has_owner) {
		owner = slot->owner;
		o = &owner;
	}
	e = new_event(EVENT_TW_RST, NULL, false, &slot->id, o, tcp_time_wait);
	if (!e)
		return 0;
	e->cookie = slot->cookie;
	e->substate = slot->substate;
	submit(e);
	return 0;
}

/*
 * Owners of the sockets open when tracing starts, by socket address, noted by
 * learn_owners and moved onto the sockets (and removed) by move_owners; user
 * space clears what no namespace's walk used. learn_owners cannot keep them
 * on the socket itself: some kernels (a 6.18 build) mark the socket it
 * reaches through the file as untrusted, which bpf_sk_storage_get refuses,
 * while iter/tcp's socket is trusted everywhere. The file's inode number
 * guards against an address freed and reused in between (0 for an MPTCP
 * socket's first TCP subflow, which has no file of its own). Not
 * preallocated: empty but for the start.
 */
struct preexisting_owner {
	struct owner owner;
	__u64 ino;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 20);
	__type(key, __u64);
	__type(value, struct preexisting_owner);
} preexisting_owners SEC(".maps");

/* Owners learn_owners could not note (preexisting_owners full). */
__u64 preexisting_owners_dropped = 0;

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
	bpf_seq_write(ctx->meta->seq, &e, sizeof(e));
	return 0;
}

/*
 * Precise hook, where the kernel allows fexit (not on every kernel: tcptrace
 * works without it): the verdict of tcp_timewait_state_process() on every
 * segment that reaches a TIME_WAIT or FIN_WAIT2 socket. Its parameters grew
 * over time (3 on 6.1, 4 on 6.12, 5 on 6.18): one program each, the loader
 * picks by the function's BTF.
 */
static __always_inline void emit_tw_segment(const struct inet_timewait_sock *tw, const struct tcphdr *th,
					    int verdict)
{
	__u64 cookie = tw->__tw_common.skc_cookie.counter;
	struct sock_id id = {};
	struct event *e;
	__u8 flags = 0;

	id.family = tw->__tw_common.skc_family;
	id.netns = tw->__tw_common.skc_net.net->ns.inum;
	id.sport = tw->__tw_common.skc_num;
	id.dport = bpf_ntohs(tw->__tw_common.skc_dport);
	e = new_tw_event(EVENT_TW_SEGMENT, tw, cookie, &id, tw_owner_of(cookie, false));
	if (!e)
		return;
	bpf_probe_read_kernel(&flags, 1, (const void *)th + TCP_FLAGS_OFF);
	e->tcp_flags = flags;
	e->seq = bpf_ntohl(th->seq);
	e->rcv_nxt = tw->__tw_common.skc_tw_rcv_nxt;
	e->reason = verdict;
	submit(e);
}

SEC("fexit/tcp_timewait_state_process")
int BPF_PROG(handle_tw_verdict3, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th,
	     int verdict)
{
	emit_tw_segment(tw, th, verdict);
	return 0;
}

SEC("fexit/tcp_timewait_state_process")
int BPF_PROG(handle_tw_verdict4, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th,
	     __u32 *tw_isn, int verdict)
{
	emit_tw_segment(tw, th, verdict);
	return 0;
}

SEC("fexit/tcp_timewait_state_process")
int BPF_PROG(handle_tw_verdict5, struct inet_timewait_sock *tw, struct sk_buff *skb, const struct tcphdr *th,
	     __u32 *tw_isn, void *drop_reason, int verdict)
{
	emit_tw_segment(tw, th, verdict);
	return 0;
}

/*
 * Precise hook where fentry is allowed: the probe senders. tcp_write_wakeup()
 * sends both keepalive and zero-window probes; its MIB argument says which,
 * at the moment the probe is sent.
 */
SEC("fentry/tcp_write_wakeup")
int BPF_PROG(handle_write_wakeup, struct sock *sk, int mib)
{
	struct sock_id id = {};
	struct owner *o;
	struct event *e;
	__u8 kind;

	if ((__u32)mib == mib_keepalive)
		kind = TCP_TIMER_KEEPALIVE;
	else if ((__u32)mib == mib_winprobe)
		kind = TCP_TIMER_WRITE;
	else
		return 0;
	if (!sock_wanted(sk, &id, &o))
		return 0;
	e = new_event(EVENT_PROBE_SENT, sk, false, &id, o, sk->__sk_common.skc_state);
	if (!e)
		return 0;
	read_sock_addrs(sk, e);
	e->timer.kind = kind;
	submit(e);
	return 0;
}

#define seq_before(a, b) ((__s32)((a) - (b)) < 0)
#define seq_after(a, b) seq_before(b, a)

/*
 * Precise hook where fentry is allowed: the segments that matter while a
 * connection closes (FIN_WAIT1/2, CLOSING, LAST_ACK, CLOSE_WAIT), seen as
 * tcp_rcv_state_process() begins on them: FIN, SYN and RST segments, those
 * outside the receive window, data after the receive side was shut, and
 * the ACK of our FIN. Plain data and ACKs (a half-closed connection can
 * carry a whole download) are left out. Window and data-after-FIN are
 * judged with the kernel's own rules (tcp_sequence(), step 7).
 */
SEC("fentry/tcp_rcv_state_process")
int BPF_PROG(handle_rcv_state_process, struct sock *sk, struct sk_buff *skb)
{
	const struct tcp_sock *tp = (const void *)sk;
	const struct tcp_skb_cb *cb = (const void *)skb->cb;
	__u32 seq, end_seq, ack_seq, rcv_nxt, rcv_wup, limit, data, fin;
	bool out_of_window, data_after_fin, acks_fin;
	const struct tcphdr *th;
	struct sock_id id = {};
	struct owner *o;
	struct event *e;
	__u8 state, flags;
	__s32 window;

	state = sk->__sk_common.skc_state;
	if (state != tcp_fin_wait1 && state != tcp_fin_wait2 && state != tcp_closing && state != tcp_last_ack &&
	    state != tcp_close_wait)
		return 0;
	seq = BPF_CORE_READ(cb, seq);
	end_seq = BPF_CORE_READ(cb, end_seq);
	ack_seq = BPF_CORE_READ(cb, ack_seq);
	flags = BPF_CORE_READ(cb, tcp_flags);
	fin = !!(flags & TCPHDR_FIN);
	rcv_nxt = BPF_CORE_READ(tp, rcv_nxt);
	rcv_wup = BPF_CORE_READ(tp, rcv_wup);
	/* tcp_receive_window(): rcv_wup + rcv_wnd - rcv_nxt, at least 0. */
	window = rcv_wup + BPF_CORE_READ(tp, rcv_wnd) - rcv_nxt;
	limit = rcv_nxt + (window < 0 ? 0 : window);
	out_of_window = seq_before(end_seq, rcv_wup) || seq_after(seq, limit);
	/* Since 6.17 also one that ends past the window while data waits to be read. */
	if (!out_of_window && bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_INVALID_END_SEQUENCE) &&
	    seq_after(end_seq - fin, limit) && BPF_CORE_READ(sk, sk_receive_queue.qlen))
		out_of_window = true;
	/* Step 7 (only an in-window segment with ACK, without RST or SYN, gets there). */
	data_after_fin = (flags & (TCPHDR_ACK | TCPHDR_RST | TCPHDR_SYN)) == TCPHDR_ACK && !out_of_window &&
			 end_seq != seq && seq_after(end_seq - fin, rcv_nxt) &&
			 (BPF_CORE_READ(sk, sk_shutdown) & RCV_SHUTDOWN);
	acks_fin = (flags & TCPHDR_ACK) && (state == tcp_fin_wait1 || state == tcp_closing || state == tcp_last_ack) &&
		   ack_seq == BPF_CORE_READ(tp, snd_nxt);
	if (!(flags & (TCPHDR_FIN | TCPHDR_SYN | TCPHDR_RST)) && !out_of_window && !data_after_fin && !acks_fin)
		return 0;
	if (!sock_wanted(sk, &id, &o))
		return 0;
	flush_birth(sk, &id, o);
	e = new_event(EVENT_SEGMENT, sk, false, &id, o, state);
	if (!e)
		return 0;
	read_sock_addrs(sk, e);
	th = (const void *)(BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, transport_header));
	/* end_seq counts a SYN and a FIN as one byte each. */
	data = end_seq - seq - !!(flags & TCPHDR_SYN) - fin;
	e->seq = seq;
	e->ack_seq = ack_seq;
	e->tcp_flags = flags;
	e->payload_len = data > 0xffff ? 0xffff : data;
	e->window = bpf_ntohs(BPF_CORE_READ(th, window));
	e->rcv_nxt = rcv_nxt;
	if (out_of_window)
		e->flags |= EVENT_FLAG_OUT_OF_WINDOW;
	if (data_after_fin)
		e->flags |= EVENT_FLAG_DATA_AFTER_FIN;
	submit(e);
	return 0;
}
