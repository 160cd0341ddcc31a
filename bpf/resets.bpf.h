/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Programs: the RSTs sent and received. */
#ifndef TCPTRACE_RESETS_BPF_H
#define TCPTRACE_RESETS_BPF_H

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

#endif
