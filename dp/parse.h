/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parse stage: one frame's bytes in, a struct fl_pkt and a verdict out.
 * Runs once per packet in a worker, so it has no unbounded loop, no library
 * call and no write outside *p and *reason.
 */
#ifndef FL_DP_PARSE_H
#define FL_DP_PARSE_H

#include <linux/types.h>
#include "pkt.h"

/*
 * fl_parse_frame (common/pkt.h, which gives what each field holds on each
 * verdict) over [frame, frame + len), which must be contiguous (one mbuf
 * segment). Out of line: one copy of the parse serves every caller.
 */
enum fl_parse_verdict fl_parse(const __u8 *frame, __u32 len, struct fl_pkt *p,
			       enum fl_drop_reason *reason);

#endif /* FL_DP_PARSE_H */
