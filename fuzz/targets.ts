// The fuzz targets, in the order a run takes them: the longest first, so that parallel workers
// end at about the same time.
import type { Target } from './harness.ts';
import { dnsTarget, dnsUdpTarget } from './targets/dns.ts';
import { managerTarget } from './targets/manager.ts';
import { sftpTarget } from './targets/sftp.ts';
import { spdyTarget } from './targets/spdy.ts';

/** Every target; each has its own input type, which only the harness handles. */
export const TARGETS = [sftpTarget, spdyTarget, dnsTarget, dnsUdpTarget, managerTarget] as Target<unknown>[];
