//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The filter and sequence helpers of tcptrace.bpf.c and its record lengths,
 * each behind a raw_tp program that BPF_PROG_TEST_RUN calls with its
 * arguments and whose return value is the helper's answer (helpers_test.go).
 * The filters are set by the test before load, as the loader sets them.
 */
#include "../kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "../event.h"
#include "../types.h"
#include "../filter.h"
#include "../seq.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("raw_tp")
int BPF_PROG(id_wanted_run, __u64 netns, __u64 family, __u64 sport, __u64 dport, __u64 remote_unknown)
{
	struct sock_id id = {
		.netns = netns,
		.family = family,
		.sport = sport,
		.dport = dport,
		.remote_unknown = remote_unknown,
	};

	return id_wanted(&id);
}

/* known = 0: no owner (NULL). */
SEC("raw_tp")
int BPF_PROG(owner_wanted_run, __u64 known, __u64 tgid, __u64 cgroup_id)
{
	struct owner o = {.tgid = tgid, .cgroup_id = cgroup_id};

	return owner_wanted(known ? &o : NULL);
}

SEC("raw_tp")
int BPF_PROG(seq_before_run, __u64 a, __u64 b)
{
	return seq_before((__u32)a, (__u32)b);
}

SEC("raw_tp")
int BPF_PROG(seq_after_run, __u64 a, __u64 b)
{
	return seq_after((__u32)a, (__u32)b);
}

SEC("raw_tp")
int BPF_PROG(record_length_run, __u64 type)
{
	return record_length(type);
}
