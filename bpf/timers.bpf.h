/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Programs: retransmits, and a socket's keepalive and write timers: their owner is reached with
 * container_of and probe reads, as for TIME_WAIT. The handler's effect is
 * read from the socket before (timer_expire_entry) and after
 * (timer_expire_exit) it ran: the two fire back to back on one CPU.
 */
#ifndef TCPTRACE_TIMERS_BPF_H
#define TCPTRACE_TIMERS_BPF_H

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
	/*
	 * What the handler sent: icsk_probes_out alone misses a probe when an
	 * ACK resets it, on another CPU, between here and the handler or
	 * between the handler and timer_expire_exit.
	 */
	slot->segs_before = BPF_CORE_READ((const struct tcp_sock *)icsk, segs_out);
	slot->state_before = BPF_CORE_READ((const struct sock *)icsk, __sk_common.skc_state);
}

/* Every timer's start: a TIME_WAIT socket's ends it, a socket timer's is read before its handler. */
SEC("tp_btf/timer_expire_entry")
int BPF_PROG(handle_timer_expire, struct timer_list *timer)
{
	if (!tw_timer_expire(timer))
		tcp_timer_entry(timer);
	return 0;
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
	__u32 segs_sent;

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
	segs_sent = BPF_CORE_READ(tp, segs_out) - slot->segs_before;
	e->timer.segs_sent = segs_sent > 255 ? 255 : segs_sent;
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

#endif
