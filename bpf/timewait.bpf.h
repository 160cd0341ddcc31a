/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Programs: TIME_WAIT sockets, seen through their timer (tw_timer, handler
 * tw_timer_handler) on the timer tracepoints, which fire for every kernel
 * timer: each program leaves at once unless the timer is a TIME_WAIT one.
 * The TIME_WAIT socket is reached with container_of and probe reads (its
 * pointer is not one the verifier can follow).
 */
#ifndef TCPTRACE_TIMEWAIT_BPF_H
#define TCPTRACE_TIMEWAIT_BPF_H

/* The TIME_WAIT socket whose timer this is; NULL for any other timer. */
static __always_inline const struct inet_timewait_sock *timer_tw(const struct timer_list *timer)
{
	if (!tw_timer_handler_addr || (__u64)timer->function != tw_timer_handler_addr)
		return NULL;
	return (const void *)timer - bpf_core_field_offset(struct inet_timewait_sock, tw_timer);
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

/*
 * A TIME_WAIT socket's timer firing: the socket ends. false if the timer is
 * not a TIME_WAIT one (timer_expire_entry, in timers.bpf.h, serves both).
 */
static __always_inline bool tw_timer_expire(const struct timer_list *timer)
{
	const struct inet_timewait_sock *tw = timer_tw(timer);
	struct sock_id id = {};
	struct event *e;
	__u64 cookie;

	if (!tw)
		return false;
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
	return true;
}

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

/*
 * timer_cancel fires before every expiry (the timer is due then: skipped
 * here) and before a re-arm into another wheel bucket (a timer_start of the
 * same timer follows at once: user space pairs them). Anything else is the
 * TIME_WAIT socket being killed early.
 */

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

#endif
