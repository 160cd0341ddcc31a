/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Records: reserved in the ring buffer, filled with what every event
 * carries, submitted with batched wakeups; counted by kind when the ring is
 * full. A child's birth is held back here until its identity is complete.
 */
#ifndef TCPTRACE_EMIT_H
#define TCPTRACE_EMIT_H

static __always_inline void count_lost(__u8 type)
{
	__u32 key = type;
	__u64 *n = bpf_map_lookup_elem(&lost, &key);

	if (n)
		*n += 1;
	__sync_fetch_and_add(&lost_total, 1);
}

/*
 * Reserves a record of kind type (record_length(type) bytes) and tail_size
 * more for its tail, and fills what every event carries; NULL if the ring
 * is full. The groups of fields its kind has are zeroed, the others are not
 * there. sk is NULL for an RST that belongs to no socket.
 */
static __always_inline struct event *new_tailed_event(__u64 ts_ns, __u32 tail_size, __u8 tail, __u8 type,
						      const struct sock *sk, bool listener,
						      const struct sock_id *id, const struct owner *o,
						      __u8 state)
{
	__u32 length = record_length(type);
	struct event *e = bpf_ringbuf_reserve(&events, length + tail_size, 0);

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
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	e->substate = 0;
	e->aux_flags = 0;
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
	if (length > RECORD_LEN_BASE) {
		e->timer_jiffies = 0;
		e->seq = 0;
		e->tsval = 0;
		e->rcv_nxt = 0;
	}
	if (length > RECORD_LEN_TIMEWAIT)
		e->prev_state_ns = 0;
	if (length > RECORD_LEN_STATE) {
		e->ack_seq = 0;
		e->window = 0;
		e->payload_len = 0;
		e->tcp_flags = 0;
		__builtin_memset(e->pad, 0, sizeof(e->pad));
	}
	if (length > RECORD_LEN_SEGMENT)
		__builtin_memset(&e->timer, 0, sizeof(e->timer));
	return e;
}

/* Where the tail of a record of kind type (a constant) starts. */
#define record_tail(e, type) ((void *)(e) + record_length(type))

static __always_inline struct event *new_event_at(__u64 ts_ns, __u8 type, const struct sock *sk, bool listener,
						  const struct sock_id *id, const struct owner *o,
						  __u8 state)
{
	return new_tailed_event(ts_ns, 0, TAIL_NONE, type, sk, listener, id, o, state);
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
		/* The longest record, with the ring's 8-byte header. */
		flags = avail >= wakeup_bytes && avail < wakeup_bytes + RECORD_LEN_FULL + 8 ?
				BPF_RB_FORCE_WAKEUP :
				BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/* Holds a child's birth until its next event; with the table full, it is reported at once. */
static __always_inline bool hold_birth(const struct sock *sk, __u64 now)
{
	__u64 key = (__u64)sk;

	if (bpf_map_update_elem(&births, &key, &now, BPF_NOEXIST))
		return false;
	__sync_fetch_and_add(&births_held, 1);
	return true;
}

/* Forgets sk's held-back birth, if any. */
static __always_inline void drop_birth(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	if (births_held && !bpf_map_delete_elem(&births, &key))
		__sync_fetch_and_add(&births_held, -1);
}

/*
 * The SYN a child was accepted for, which may have ended a TIME_WAIT (see
 * the tracker): the peer's initial sequence number, and the last timestamp
 * the child took from the peer (ts_recent: the handshake's ACK's, or a
 * later segment's for a Fast Open child). The kernel gives the child these
 * after it announces it: a birth told at once leaves them to the child's
 * next move.
 */
static __always_inline void read_syn(const struct sock *sk, struct event *e)
{
	const struct tcp_sock *tp = (const void *)sk;

	e->seq = BPF_CORE_READ(tp, rcv_nxt) - 1 - (__u32)BPF_CORE_READ(tp, bytes_received);
	e->flags |= EVENT_FLAG_SEQ_KNOWN;
	if (BPF_CORE_READ(tp, rx_opt.ts_recent_stamp)) {
		e->tsval = BPF_CORE_READ(tp, rx_opt.ts_recent);
		e->flags |= EVENT_FLAG_TSVAL_KNOWN;
	}
}

/*
 * Reports sk's held-back birth, if any, with the identity it has now, and
 * tells whether it had one. It is held from the child's move into SYN_RECV
 * to its next event, so only a socket in SYN_RECV can have one, or one
 * whose move out of it the filters left out (a task not wanted ran it),
 * whose destroy ends it at the latest: may_hold says whether sk is either,
 * and the other events, most of them, need no lookup.
 */
static __always_inline bool flush_birth(const struct sock *sk, bool may_hold, const struct sock_id *id,
					const struct owner *o)
{
	__u64 key = (__u64)sk, *born, born_ns;
	struct event *e;

	if (!births_held || !may_hold)
		return false;
	born = bpf_map_lookup_elem(&births, &key);
	if (!born)
		return false;
	born_ns = *born;
	/* Whoever deletes it reports it: two CPUs may get here at once. */
	if (bpf_map_delete_elem(&births, &key))
		return false;
	__sync_fetch_and_add(&births_held, -1);
	e = new_event_at(born_ns, EVENT_STATE, sk, false, id, o, tcp_syn_recv);
	if (!e)
		return true;
	e->old_state = tcp_listen;
	read_sock_addrs(sk, e);
	read_syn(sk, e);
	submit(e);
	return true;
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
 * Reserves a one-socket event (retransmit, resets, destroy) and tail_size
 * bytes for its tail, with its identity filled, if the filters want it; the
 * caller submits it.
 * by_holder: a socket that keeps no owner gets the task holding it, if
 * closed_by_owner() says that task owns it.
 */
static __always_inline struct event *new_sock_event(const struct sock *sk, __u8 type, __u32 tail_size, __u8 tail,
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
	state = sk->__sk_common.skc_state;
	flush_birth(sk, state == tcp_syn_recv || type == EVENT_DESTROY, &id, o);
	e = new_tailed_event(bpf_ktime_get_ns(), tail_size, tail, type, sk, state == tcp_listen, &id, o, state);
	if (e)
		read_sock_addrs(sk, e);
	return e;
}

/* Emits a one-socket event without a tail if the filters want it. */
static __always_inline void emit_sock_event(const struct sock *sk, __u8 type, __u32 reason,
					    bool has_reason)
{
	struct event *e = new_sock_event(sk, type, 0, TAIL_NONE, false);

	if (!e)
		return;
	if (has_reason) {
		e->reason = reason;
		e->flags |= EVENT_FLAG_HAS_REASON;
	}
	submit(e);
}

#endif
