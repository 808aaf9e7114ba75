// The accept queue of telepod's listeners that take other programs' connections: the daemon's
// outbound listener and the agent's intercepted ports.

/**
 * A listen backlog the kernel cuts to `net.core.somaxconn` (4096 by default since Linux 5.4),
 * which is what Go's listeners, and so `kubectl port-forward`, ask for. Node's default of 511
 * overflowed when 1,000 connections were opened at once: each SYN dropped waited a second for
 * its retransmission.
 */
export const LISTEN_BACKLOG = 65535;
