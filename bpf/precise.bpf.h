/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Programs on the precise hooks (fentry/fexit), loaded where the kernel allows them. */
#ifndef TCPTRACE_PRECISE_BPF_H
#define TCPTRACE_PRECISE_BPF_H

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
	/* No birth to flush: a socket in a closing state has left SYN_RECV. */
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

#endif
