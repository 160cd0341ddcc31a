/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel's values the loader finds by name (BTF, kallsyms) and writes
 * into the object before load: TCP states, timer handlers and offsets, errno
 * and MIB numbers. Included by tcptrace.bpf.c only.
 */
#ifndef TCPTRACE_CONFIG_H
#define TCPTRACE_CONFIG_H

/*
 * TCP state numbers, resolved by name from the running kernel's BTF by the
 * loader: the kernel's state enum is anonymous, so CO-RE cannot relocate it.
 */
const volatile __u8 tcp_close = 0;
const volatile __u8 tcp_listen = 0;
const volatile __u8 tcp_syn_sent = 0;
const volatile __u8 tcp_established = 0;
const volatile __u8 tcp_syn_recv = 0;
const volatile __u8 tcp_fin_wait1 = 0;
const volatile __u8 tcp_fin_wait2 = 0;
const volatile __u8 tcp_last_ack = 0;
const volatile __u8 tcp_closing = 0;
const volatile __u8 tcp_close_wait = 0;
const volatile __u8 tcp_time_wait = 0;
const volatile __u8 tcp_new_syn_recv = 0;

/*
 * Address of tw_timer_handler(), from /proc/kallsyms: the function of every
 * TIME_WAIT socket's timer. 0 disables TIME_WAIT tracking.
 */
const volatile __u64 tw_timer_handler_addr = 0;

/*
 * Addresses of tcp_keepalive_timer() and tcp_write_timer(), likewise: the
 * functions of a socket's keepalive and write (retransmit, zero-window
 * probe, loss probe) timers. 0 disables them.
 */
const volatile __u64 tcp_keepalive_timer_addr = 0;
const volatile __u64 tcp_write_timer_addr = 0;
/* ECONNABORTED, the errno tcp_abort() leaves (its number differs between architectures). */
const volatile __s32 econnaborted = 0;

/* LINUX_MIB_TCPKEEPALIVE and LINUX_MIB_TCPWINPROBE, from BTF. */
const volatile __u32 mib_keepalive = 0;
const volatile __u32 mib_winprobe = 0;

/* Offsets of those timers in the socket that owns them. */
const volatile __u32 keepalive_timer_offset = 0;
const volatile __u32 write_timer_offset = 0;

/* icsk_pending values (#defines in include/net/inet_connection_sock.h, so
 * not in BTF; unchanged since 2005/2017). */
#define ICSK_TIME_RETRANS 1
#define ICSK_TIME_PROBE0 3
#define ICSK_TIME_LOSS_PROBE 5

/*
 * Wake the reader only once this much data waits in the ring; the reader also
 * polls on a timer. Batching wakeups is most of the tracer's speed. 0 leaves
 * wakeups to the kernel's default (one per record the reader has not seen).
 */
const volatile __u32 wakeup_bytes = 0;

#endif
