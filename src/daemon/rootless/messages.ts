// The messages between the rootless daemon and its namespace holder, over the IPC channel of
// the holder's process (Node's child_process channel, which also carries socket handles).
import * as z from 'zod/mini';

/** Daemon → holder. */
export const ToHolderSchema = z.discriminatedUnion('kind', [
  /** Connect to a port of the namespace's loopback (an intercept's local server) and hand the socket over. */
  z.object({ kind: z.literal('connect'), id: z.number(), port: z.number() }),
  /** The loopback ports the machine listens on now. */
  z.object({ kind: z.literal('host-ports'), ports: z.array(z.number()) }),
]);
export type ToHolder = z.infer<typeof ToHolderSchema>;

/** Holder → daemon; `tcp`, `dns` and `connected` carry a handle. */
export const FromHolderSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('tcp') }),
  z.object({ kind: z.literal('dns'), pid: z.number() }),
  z.object({ kind: z.literal('connected'), id: z.number() }),
  z.object({ kind: z.literal('connect-failed'), id: z.number(), error: z.string() }),
  z.object({ kind: z.literal('failed'), error: z.string() }),
]);
export type FromHolder = z.infer<typeof FromHolderSchema>;
