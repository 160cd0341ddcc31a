//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcptrace's kernel side: tp_btf programs on the TCP tracepoints that turn
 * state changes, retransmits, resets and socket teardown into ring-buffer
 * records, each attributed to the socket's owning process.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Put the record types in the object's BTF, where bpf2go finds them. */
const struct event *unused_event __attribute__((unused));
const enum event_type unused_event_type __attribute__((unused));
const enum event_flag unused_event_flag __attribute__((unused));
const enum tcp_timer_kind unused_tcp_timer_kind __attribute__((unused));
const enum tw_flag unused_tw_flag __attribute__((unused));
const enum record_tail unused_record_tail __attribute__((unused));
const enum handshake_option unused_handshake_option __attribute__((unused));
const enum record_length unused_record_length __attribute__((unused));
const struct tcp_handshake *unused_tcp_handshake __attribute__((unused));
const struct tcp_counters *unused_tcp_counters __attribute__((unused));
const enum close_flag unused_close_flag __attribute__((unused));

#include "config.h"
#include "types.h"
#include "maps.h"
#include "filter.h"
#include "sock.h"
#include "owner.h"
#include "emit.h"
#include "seq.h"

/* The programs, in the order of the loader's hook table. */
#include "state.bpf.h"
#include "resets.bpf.h"
#include "timewait.bpf.h"
#include "timers.bpf.h"
#include "snapshot.bpf.h"
#include "precise.bpf.h"
