/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types tcptrace reads, written for this project instead of a
 * full vmlinux.h. Every struct carries preserve_access_index, so field offsets
 * are relocated against the running kernel's BTF at load (CO-RE): only field
 * names and types must match, not layouts. Anonymous unions and structs of the
 * real definitions are flattened; libbpf looks through them by name.
 */
#ifndef TCPTRACE_KERNEL_H
#define TCPTRACE_KERNEL_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_MPTCP 262
#define E2BIG 7 /* errno: a full hash map refuses an update with -E2BIG */
#define TASK_COMM_LEN 16
#define PF_KTHREAD 0x00200000 /* task_struct.flags: a kernel thread (include/linux/sched.h, since 2.6.27) */

/* From include/uapi/linux/bpf.h (stable UAPI values). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};
enum {
	BPF_F_NO_PREALLOC = 1U << 0,
	BPF_F_CLONE = 1U << 9,
};
enum {
	BPF_SK_STORAGE_GET_F_CREATE = 1,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

typedef struct {
	__s64 counter;
} atomic64_t;

typedef struct {
	int counter;
} atomic_t;

typedef struct refcount_struct {
	atomic_t refs;
} refcount_t;

/* A namespace's reference count moved: net.count (to 5.10), ns_common.count
 * (5.11 to 6.17), ns_common.__ns_ref (6.18 on). */
struct ns_common {
	unsigned int inum;
	refcount_t count;
	refcount_t __ns_ref;
};

struct net {
	refcount_t count;
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	atomic64_t skc_cookie;
	__u32 skc_tw_rcv_nxt;
	unsigned long skc_flags; /* sk_flags: sock_flag() bits */
};

struct sk_buff_head {
	__u32 qlen;
};

struct socket;

/* owned: a task holds the socket (lock_sock()). */
typedef struct {
	int owned;
} socket_lock_t;

struct sock {
	struct sock_common __sk_common;
	socket_lock_t sk_lock;
	struct socket *sk_socket;
	__u16 sk_protocol;
	__u8 sk_shutdown;
	int sk_err;
	unsigned long sk_lingertime;
	struct sk_buff_head sk_receive_queue;
};

#define RCV_SHUTDOWN 1

/* The named enum of sock_flag() bits; SOCK_KEEPOPEN is SO_KEEPALIVE,
 * SOCK_LINGER SO_LINGER's l_onoff (sk_lingertime its l_linger). */
enum sock_flags {
	SOCK_KEEPOPEN = 3,
	SOCK_LINGER = 4,
};

/* A drop reason of 6.17+, whose tcp_sequence() it came with (see the segment hook). */
enum skb_drop_reason {
	SKB_DROP_REASON_TCP_INVALID_END_SEQUENCE = 1,
};

struct request_sock {
	struct sock_common __req_common;
	__u8 num_retrans;
};

struct inet_sock {
	struct sock sk;
	__be16 inet_sport;
};

struct net_device {
	possible_net_t nd_net;
};

struct sk_buff {
	struct net_device *dev;
	char cb[48];
	unsigned char *head;
	__u16 transport_header;
	__u16 network_header;
};

struct timer_list {
	unsigned long expires;
	void (*function)(struct timer_list *);
};

struct inet_timewait_sock {
	struct sock_common __tw_common;
	unsigned char tw_substate;
	struct timer_list tw_timer;
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__be16 window;
};

/*
 * What TCP keeps of a received segment in skb->cb (TCP_SKB_CB()).
 * tcp_flags is a __u16 on newer kernels: its low byte, read here (little
 * endian), holds the flags of the TCP header.
 */
struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	__u8 tcp_flags;
	__u32 ack_seq;
};

struct tcp_timewait_sock {
	struct inet_timewait_sock tw_sk;
	__u32 tw_ts_recent;
	int tw_ts_recent_stamp;
};

struct tcp_options_received {
	int ts_recent_stamp;
	__u32 ts_recent;
	__u16 saw_tstamp : 1, tstamp_ok : 1, dsack : 1, wscale_ok : 1, sack_ok : 3, smc_ok : 1, snd_wscale : 4,
		rcv_wscale : 4;
	__u16 mss_clamp;
};

struct minmax_sample {
	__u32 t;
	__u32 v;
};

struct minmax {
	struct minmax_sample s[3];
};

struct inet_connection_sock {
	__u32 icsk_rto;
	__u8 icsk_pending;
	__u8 icsk_backoff;
	__u8 icsk_probes_out;
	__u32 icsk_user_timeout;
};

struct tcp_sock {
	__u32 rcv_nxt;
	__u32 snd_nxt;
	__u32 rcv_wup;
	__u32 rcv_wnd;
	__u32 snd_wnd;
	__u32 rcv_tstamp;
	struct tcp_options_received rx_opt;
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 segs_in;
	__u32 segs_out;
	__u32 total_retrans;
	__u32 srtt_us;
	__u32 mss_cache;
	__u16 advmss;
	__u8 ecn_flags;
	__u8 syn_data_acked : 1;
	struct minmax rtt_min;
	__u32 rate_delivered;
	__u32 rate_interval_us;
	unsigned int keepalive_time;
	unsigned int keepalive_intvl;
	__u8 keepalive_probes;
	int linger2;
};

struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct task_struct {
	unsigned int flags;
	int tgid;
	struct task_struct *group_leader;
	struct css_set *cgroups;
	char comm[TASK_COMM_LEN];
};

struct inode {
	unsigned long i_ino;
};

struct file {
	struct inode *f_inode;
};

struct socket {
	struct sock *sk;
	struct file *file;
};

struct mptcp_sock {
	struct sock *first;
};

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
};

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
};

#pragma clang attribute pop

/* Offsets in wire headers (RFC 791, RFC 8200, RFC 9293), read as bytes. */
#define IPV4_SADDR_OFF 12
#define IPV4_DADDR_OFF 16
#define IPV6_SADDR_OFF 8
#define IPV6_DADDR_OFF 24
#define TCP_SPORT_OFF 0
#define TCP_DPORT_OFF 2
#define TCP_FLAGS_OFF 13
#define TCPHDR_FIN 0x01
#define TCPHDR_SYN 0x02
#define TCPHDR_RST 0x04
#define TCPHDR_ACK 0x10
#define TCP_WINDOW_OFF 14
#define TCP_FLAG_RST 0x04

#endif
