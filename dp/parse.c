/* SPDX-License-Identifier: BSD-3-Clause */
/* The parse stage (parse.h): the parse the XDP balancer runs too. */
#include "parse.h"

enum fl_parse_verdict fl_parse(const __u8 *frame, __u32 len, struct fl_pkt *p,
			       enum fl_drop_reason *reason)
{
	return fl_parse_frame(frame, frame + len, p, reason);
}
