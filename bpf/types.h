/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What the programs keep about sockets and their owners, in maps and on the stack. */
#ifndef TCPTRACE_TYPES_H
#define TCPTRACE_TYPES_H

struct owner {
	__u64 cgroup_id;
	__u32 tgid;
	char comm[TASK_COMM_LEN];
};

struct sock_info {
	struct owner owner;
	__u64 state_since_ns; /* when the socket entered its current state */
};

/* The parts of a socket's identity the filters look at. */
struct sock_id {
	__u32 netns;
	__u16 family;
	__u16 sport;
	__u16 dport;
	/*
	 * No remote port, and no listener: tcp_disconnect() (a close() with
	 * SO_LINGER {1, 0}) zeroes it before the socket's destroy. (So is a
	 * socket that never connected, or one becoming a listener, or a child
	 * being born, whose remote port is given after: see hold_birth.) The
	 * port filters cannot judge it.
	 */
	bool remote_unknown;
};

struct tw_owner {
	struct owner owner;
	bool armed; /* a TIME_WAIT socket took over the cookie */
};

/* The TIME_WAIT timer stopped last on this CPU, to spot the RST that did it. */
struct tw_cancel {
	__u64 ts_ns;
	__u64 cookie;
	struct sock_id id;
	struct owner owner;
	bool has_owner;
	__u8 substate;
};

/* The socket timer running on this CPU, read before its handler (timer_expire_entry) for after it (timer_expire_exit). */
struct tcp_timer_slot {
	__u64 timer;
	__u64 entry_ns;
	__u32 segs_before;
	__u8 pending;
	__u8 probes_before;
	__u8 state_before;
};

struct preexisting_owner {
	struct owner owner;
	__u64 ino;
};

#endif
