/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Programs: every state change (inet_sock_set_state) and every socket's destroy. */
#ifndef TCPTRACE_STATE_BPF_H
#define TCPTRACE_STATE_BPF_H

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
	struct sock_id id = {};
	__u64 now, prev_ns = 0;
	bool prev_known = false, listener, in_context, syn_due;
	struct event *e;
	__u32 tgid;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	read_sock_id(sk, &id);
	/* A child being born still has its listener's remote port, 0 (see hold_birth). */
	if (old_state == tcp_listen && new_state == tcp_syn_recv && !id.dport)
		id.remote_unknown = true;
	if (!id_wanted(&id)) {
		/* Its remote port given, a child is not wanted after all. */
		if (old_state == tcp_syn_recv)
			drop_birth(sk);
		return 0;
	}

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
		/* A new child (its storage a copy of its listener's). */
		if (info)
			info->state_since_ns = now;
		/* Told at once where the kernel gave it its identity first (6.15 and later). */
		if (!id.dport && hold_birth(sk, now))
			return 0;
	}
	/* A child told at once is told its SYN with its next move (see read_syn). */
	syn_due = !flush_birth(sk, old_state == tcp_syn_recv, &id, o) && old_state == tcp_syn_recv;
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
		e = new_tailed_event(now, sizeof(struct tcp_handshake), TAIL_HANDSHAKE, EVENT_STATE, sk, listener, &id,
				     o, new_state);
		if (e)
			read_handshake(sk, record_tail(e, EVENT_STATE));
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
	if (syn_due)
		read_syn(sk, e);
	read_sock_addrs(sk, e);
	submit(e);
	return 0;
}

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
	struct tw_owner *two;
	struct event *e;
	__u64 cookie;

	e = new_sock_event(sk, EVENT_DESTROY, sizeof(struct tcp_counters), TAIL_COUNTERS, true);
	if (e) {
		read_counters(sk, record_tail(e, EVENT_DESTROY));
		submit(e);
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

#endif
