/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the object, each with when its entries are added and
 * removed, and the counters kept beside them.
 */
#ifndef TCPTRACE_MAPS_H
#define TCPTRACE_MAPS_H

/*
 * Per-socket owner and state clock, stored on the socket itself, for the owner filters
 * only: the filter must know the owner of a socket whose events run in
 * softirq. Created when a socket's owner is first learnt (connect, listen,
 * close in process context), freed by the kernel with the socket. BPF_F_CLONE
 * copies a listener's entry to each child it spawns, which is how an accepted
 * socket, created in softirq, inherits its server's owner. Without owner filters no
 * entry is made: allocating one for every socket, cloning it into every
 * accepted one and freeing them through RCU cost about 1.5 us a connection
 * under churn (perf); user space knows each socket's owner and state times
 * from its earlier events (and an accepted socket's from its listener's).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_info);
} socks SEC(".maps");

/*
 * A socket's owner, stored on it, without owner filters, for its own later events: a
 * listener's (its close, its RSTs, its SYN-ACK retransmits), and that of a
 * socket open when tracing starts. Not cloned: an accepted socket's owner
 * user space takes from its listener's events. Made at listen() and by
 * move_owners, updated by the owner's own transitions, freed with the socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct owner);
} kept_owners SEC(".maps");

/*
 * Owners by cookie, for the owner filters where a program reaches a socket only as an
 * address (the timer tracepoints) and cannot use its storage, and for
 * TIME_WAIT sockets, separate storage-less kernel objects that keep only the
 * cookie. (Without owner filters, user space knows the owner from the socket's
 * earlier events.) Added when an owner is learnt; removed when the TIME_WAIT
 * timer fires, or at destroy when no TIME_WAIT followed. LRU: a TIME_WAIT
 * ended early (cancelled) leaves its entry to be evicted.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tw_owner);
} cookie_owners SEC(".maps");

/* The TIME_WAIT timer stopped last on this CPU (timer_cancel), read by kfree_skb to spot the RST that stopped it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tw_cancel);
} tw_cancels SEC(".maps");

/*
 * The records, for user space: reserved and submitted by every program (a
 * record is never held across programs), consumed by the reader; resized
 * by the loader (--ring-size).
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/*
 * Records dropped because the ring buffer was full, by kind of record (enum
 * event_type); one slot per CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENT_TYPE_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/*
 * The same records, all kinds and CPUs together, read by the reader at each
 * poll from the object's mapped memory, with no system call: the table
 * above is read at the end. Atomic, but touched only when the ring is full.
 */
__u64 lost_total = 0;

/*
 * Children whose LISTEN -> SYN_RECV is held back, by socket address, with the
 * transition's time: kernels before 6.15 (Debian's 6.1 and 6.12 among them)
 * announce the child before they give it its remote port and its cookie
 * (copied from the request sock), so its identity is right only at its next
 * event, which reports the birth first. Every such child has one: its
 * destroy at the latest. Later kernels give the child its identity first:
 * its birth is told at once, and holding it would cost more than a tenth
 * of what tracing costs the kernel on a churning server.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} births SEC(".maps");

/*
 * Births held and not yet reported: while there are none, which is nearly
 * always (a child's next event follows its birth in the same softirq),
 * events leave before any map lookup.
 */
__u64 births_held = 0;

/*
 * Sockets in a zero-window episode (a zero-window probe went out), by
 * cookie: tcp_probe reports when the peer's window opens again. Added by the
 * write timer, removed when the window opens; LRU for sockets that close.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} zero_window SEC(".maps");

/*
 * Entries added to zero_window and not yet removed (evicted ones stay
 * counted): while there are none, tcp_probe, which runs for every segment
 * received, leaves before any map lookup.
 */
__u64 zero_window_entries = 0;

/* One slot per CPU: see struct tcp_timer_slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tcp_timer_slot);
} tcp_timer_slots SEC(".maps");

/*
 * Owners of the sockets open when tracing starts, by socket address, noted by
 * learn_owners and moved onto the sockets (and removed) by move_owners; user
 * space clears what no namespace's walk used. learn_owners cannot keep them
 * on the socket itself: some kernels (a 6.18 build) mark the socket it
 * reaches through the file as untrusted, which bpf_sk_storage_get refuses,
 * while iter/tcp's socket is trusted everywhere. The file's inode number
 * guards against an address freed and reused in between (0 for an MPTCP
 * socket's first TCP subflow, which has no file of its own). Not
 * preallocated: empty but for the start.
 */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 20);
	__type(key, __u64);
	__type(value, struct preexisting_owner);
} preexisting_owners SEC(".maps");

/* Owners learn_owners could not note (preexisting_owners full). */
__u64 preexisting_owners_dropped = 0;

#endif
