/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A socket's identity and addresses, read from a full, TIME_WAIT or request sock. */
#ifndef TCPTRACE_SOCK_H
#define TCPTRACE_SOCK_H

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
	id->remote_unknown = !id->dport && sk->__sk_common.skc_state != tcp_listen;
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

#endif
