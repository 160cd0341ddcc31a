/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP sequence number comparisons, modulo 2^32 (the kernel's before()/after()). */
#ifndef TCPTRACE_SEQ_H
#define TCPTRACE_SEQ_H

#define seq_before(a, b) ((__s32)((a) - (b)) < 0)
#define seq_after(a, b) seq_before(b, a)

#endif
