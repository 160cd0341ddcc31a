/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one record layout tcptrace's BPF programs send through the ring buffer.
 * bpf2go generates the Go side from this definition (-type event) and
 * layoutgen copies it to package bpf/layout, which the decoder reads records
 * with; a test in package bpf checks that struct against the object's BTF.
 */
#ifndef TCPTRACE_EVENT_H
#define TCPTRACE_EVENT_H

#define MAX_FILTER_PIDS 64
#define MAX_FILTER_CGROUPS 64
#define MAX_FILTER_PORTS 16

enum event_type {
	EVENT_STATE = 1,	  /* tcp_set_state(): old_state -> new_state */
	EVENT_RETRANSMIT = 2,	  /* a retransmitted segment left the stack */
	EVENT_RESET_SENT = 3,	  /* tcp_send_reset: we sent an RST */
	EVENT_RESET_RECEIVED = 4, /* tcp_receive_reset: tcp_reset() ran */
	EVENT_DESTROY = 5,	  /* tcp_destroy_sock: socket torn down */
	EVENT_TW_START = 6,	  /* a TIME_WAIT socket's timer was armed */
	EVENT_TW_EXPIRE = 7,	  /* ... it fired: the TIME_WAIT socket ends */
	EVENT_TW_CANCEL = 8,	  /* ... it was stopped before it was due */
	EVENT_TW_RST = 9,	  /* ... and the segment that stopped it was an RST */
	EVENT_SNAPSHOT = 10,	  /* a socket that existed when tracing began */
	EVENT_TCP_TIMER = 11,	  /* a socket's keepalive or write timer fired */
	EVENT_WINDOW_OPEN = 12,	  /* the peer reopened a zero window */
	EVENT_TW_SEGMENT = 13,	  /* a segment reached a TIME_WAIT socket: the verdict */
	EVENT_PROBE_SENT = 14,	  /* tcp_write_wakeup() sent a keepalive or zero-window probe */
	EVENT_SEGMENT = 15,	  /* tcp_rcv_state_process() got a segment in a closing state */
	EVENT_TYPE_COUNT,	  /* not a kind: one more than the last */
};

enum tcp_timer_kind {
	TCP_TIMER_KEEPALIVE = 1, /* tcp_keepalive_timer */
	TCP_TIMER_WRITE = 2,	 /* tcp_write_timer: retransmit, probe0, loss probe */
};

/* What a socket's timer did (EVENT_TCP_TIMER), read before and after it ran. */
struct tcp_timer_facts {
	__u64 entry_ns;		 /* when the handler started */
	__u32 next_jiffies;	 /* until it is due again; 0 if not re-armed */
	__u32 idle_jiffies;	 /* since the last segment was received */
	__u32 rto_jiffies;	 /* icsk_rto after */
	__u32 keepalive_time;	 /* per-socket TCP_KEEPIDLE, jiffies; 0: the sysctl */
	__u32 keepalive_intvl;	 /* per-socket TCP_KEEPINTVL, jiffies; 0: the sysctl */
	__u32 user_timeout_ms;	 /* TCP_USER_TIMEOUT; 0: none */
	__u32 snd_wnd;		 /* the peer's window */
	__u8 kind;		 /* enum tcp_timer_kind */
	__u8 pending;		 /* icsk_pending when it fired (write timer) */
	__u8 probes_before;	 /* icsk_probes_out before and after */
	__u8 probes_after;
	__u8 backoff;		 /* icsk_backoff after */
	__u8 keepalive_probes;	 /* per-socket TCP_KEEPCNT; 0: the sysctl */
	__u8 keepalive_on;	 /* SO_KEEPALIVE is set (old_state: the state before) */
	__u8 segs_sent;		 /* segments the socket sent as the handler ran (a probe, an RST), at most 255 */
};

enum event_flag {
	EVENT_FLAG_OWNER_KNOWN = 1 << 0,   /* pid/comm/cgroup_id are the owner's */
	EVENT_FLAG_HAS_REASON = 1 << 1,	   /* reason holds an enum sk_rst_reason */
	EVENT_FLAG_NO_SOCKET = 1 << 2,	   /* RST for a segment that matched no socket */
	EVENT_FLAG_PREV_STATE_KNOWN = 1 << 3, /* prev_state_ns is measured */
	EVENT_FLAG_SEQ_KNOWN = 1 << 4,	      /* seq is set */
	EVENT_FLAG_TSVAL_KNOWN = 1 << 5,      /* tsval is set */
	EVENT_FLAG_OUT_OF_WINDOW = 1 << 6,    /* EVENT_SEGMENT: outside the receive window */
	EVENT_FLAG_DATA_AFTER_FIN = 1 << 7,   /* EVENT_SEGMENT: data after the receive side shut */
};

enum tw_flag {
	TW_FLAG_EXPIRES_KNOWN = 1 << 0, /* timer_jiffies holds expires - jiffies */
	TW_FLAG_NETNS_DYING = 1 << 1,	/* EVENT_TW_CANCEL: no reference to the namespace is left (it is torn down) */
};

/* The socket's options that make a close an abort, read as it moves to CLOSE. */
enum close_flag {
	CLOSE_FLAG_READ = 1 << 0,	      /* the options were read */
	CLOSE_FLAG_LINGER_ZERO = 1 << 1,      /* SO_LINGER {1, 0} */
	CLOSE_FLAG_LINGER2_NEGATIVE = 1 << 2, /* TCP_LINGER2 < 0 */
};

/*
 * Laid out by who needs what: the fields every kind carries come first, then
 * groups each kind needs only some of, in order, so that a record is only
 * as long as its kind (enum record_length) and the fields past it read as
 * zero. A record's length is its kind's plus its tail's.
 */
struct event {
	/* Every kind. */
	__u64 ts_ns;	     /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cookie;	     /* socket cookie; 0 with EVENT_FLAG_NO_SOCKET */
	__u64 cgroup_id;     /* owner's cgroup v2 id */
	__u8 saddr[16];	     /* local address (IPv4 in the first 4 bytes) */
	__u8 daddr[16];	     /* remote address */
	__u32 netns;	     /* network namespace inode */
	__u32 pid;	     /* owner's tgid */
	__u32 reason;	     /* raw enum sk_rst_reason value; EVENT_TW_SEGMENT:
			      * the raw enum tcp_tw_status verdict */
	__u16 sport;	     /* local port, host order */
	__u16 dport;	     /* remote port, host order */
	__u8 type;	     /* enum event_type */
	__u8 family;	     /* 4 or 6 */
	__u8 old_state;	     /* kernel TCP state before (EVENT_STATE, EVENT_TCP_TIMER) */
	__u8 state;	     /* kernel TCP state after, or the state at the event */
	__u8 flags;	     /* enum event_flag bits */
	__u8 substate;	     /* TIME_WAIT socket's tw_substate (EVENT_TW_*) */
	__u8 aux_flags;	     /* EVENT_TW_EXPIRE, EVENT_TW_CANCEL: enum tw_flag bits;
			      * EVENT_STATE into CLOSE: enum close_flag bits */
	__u8 tail;	     /* enum record_tail: what follows the record */
	char comm[16];	     /* owner's process name */

	/* In records of RECORD_LEN_TIMEWAIT and longer: TIME_WAIT timers, births, segments. */
	__u32 timer_jiffies; /* EVENT_TW_START, EVENT_SNAPSHOT of a TIME_WAIT
			      * socket: jiffies until its timer is due;
			      * EVENT_TW_EXPIRE, EVENT_TW_CANCEL with
			      * TW_FLAG_EXPIRES_KNOWN: timer->expires - jiffies,
			      * signed (negative once due) */
	__u32 seq;	     /* EVENT_TW_CANCEL: the TIME_WAIT socket's rcv_nxt;
			      * a child's LISTEN -> SYN_RECV: its SYN's sequence;
			      * EVENT_TW_SEGMENT, EVENT_SEGMENT: the segment's sequence */
	__u32 tsval;	     /* the same for the TCP timestamp (ts_recent) */
	__u32 rcv_nxt;	     /* EVENT_TW_SEGMENT, EVENT_SEGMENT: the socket's rcv_nxt */

	/* In records of RECORD_LEN_STATE and longer. */
	__u64 prev_state_ns; /* time spent in old_state */

	/* In records of RECORD_LEN_SEGMENT and longer: a received segment's header. */
	__u32 ack_seq;	     /* EVENT_SEGMENT: the segment's acknowledgment number */
	__u16 window;	     /* EVENT_SEGMENT: the segment's window field, unscaled */
	__u16 payload_len;   /* EVENT_SEGMENT: bytes of data in the segment */
	__u8 tcp_flags;	     /* EVENT_TW_SEGMENT, EVENT_SEGMENT: the segment's TCP flags byte */
	__u8 pad[7];

	/* In records of RECORD_LEN_FULL only: socket timers and probes. */
	struct tcp_timer_facts timer;
};

/*
 * How long each kind's record is (before its tail): the offset of the first
 * group it does not use. The records most numerous, state changes, carry
 * neither a segment nor a timer.
 */
enum record_length {
	/* retransmits, resets, destroys, EVENT_TW_RST */
	RECORD_LEN_BASE = __builtin_offsetof(struct event, timer_jiffies),
	/* EVENT_TW_START, _EXPIRE, _CANCEL, EVENT_SNAPSHOT */
	RECORD_LEN_TIMEWAIT = __builtin_offsetof(struct event, prev_state_ns),
	/* EVENT_STATE */
	RECORD_LEN_STATE = __builtin_offsetof(struct event, ack_seq),
	/* EVENT_TW_SEGMENT, EVENT_SEGMENT */
	RECORD_LEN_SEGMENT = __builtin_offsetof(struct event, timer),
	/* EVENT_TCP_TIMER, EVENT_PROBE_SENT, EVENT_WINDOW_OPEN */
	RECORD_LEN_FULL = sizeof(struct event),
};

/* The length of a record of kind type, before its tail. */
static __always_inline __u32 record_length(__u8 type)
{
	switch (type) {
	case EVENT_TW_START:
	case EVENT_TW_EXPIRE:
	case EVENT_TW_CANCEL:
	case EVENT_SNAPSHOT:
		return RECORD_LEN_TIMEWAIT;
	case EVENT_STATE:
		return RECORD_LEN_STATE;
	case EVENT_TW_SEGMENT:
	case EVENT_SEGMENT:
		return RECORD_LEN_SEGMENT;
	case EVENT_TCP_TIMER:
	case EVENT_PROBE_SENT:
	case EVENT_WINDOW_OPEN:
		return RECORD_LEN_FULL;
	}
	return RECORD_LEN_BASE;
}

/* What follows a record of some kinds, so that the others need not be as long. */
enum record_tail {
	TAIL_NONE = 0,
	TAIL_HANDSHAKE = 1, /* struct tcp_handshake: an EVENT_STATE into ESTABLISHED */
	TAIL_COUNTERS = 2,  /* struct tcp_counters: an EVENT_DESTROY */
};

enum handshake_option {
	HANDSHAKE_WSCALE = 1 << 0,     /* window scaling (both sides offered it) */
	HANDSHAKE_SACK = 1 << 1,       /* selective acknowledgments */
	HANDSHAKE_TIMESTAMPS = 1 << 2, /* TCP timestamps */
	HANDSHAKE_ECN = 1 << 3,	       /* classic ECN (RFC 3168) */
	HANDSHAKE_FASTOPEN = 1 << 4,   /* the client's data in its SYN was acknowledged (TFO) */
};

/* The terms the handshake settled, read as the socket becomes ESTABLISHED. */
struct tcp_handshake {
	__u32 srtt_us;	      /* smoothed RTT, µs: the handshake's own sample where it is the first */
	__u32 retrans;	      /* retransmissions so far: the client's SYNs, the server's SYN-ACKs */
	__u16 mss_in_use;     /* mss_cache: the MSS sent with */
	__u16 mss_advertised; /* advmss: the MSS this side announced */
	__u16 mss_received;   /* rx_opt.mss_clamp: the peer's MSS option (clamped by this side) */
	__u8 snd_wscale;      /* the peer's window scale (HANDSHAKE_WSCALE) */
	__u8 rcv_wscale;      /* this side's */
	__u8 options;	      /* enum handshake_option bits */
	__u8 pad[7];
};

/* What a socket carried, read as it is destroyed (as tcp_info tells it). */
struct tcp_counters {
	__u64 bytes_acked;    /* sent and acknowledged */
	__u64 bytes_received; /* received in order */
	__u64 delivery_rate;  /* bytes a second, the last sample; 0 if none */
	__u32 segs_out;
	__u32 segs_in;
	__u32 total_retrans; /* segments retransmitted */
	__u32 srtt_us;	     /* smoothed RTT, µs */
	__u32 min_rtt_us;    /* the least RTT seen (windowed) */
	__u32 pad;
};

#endif
