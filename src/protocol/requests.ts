// The bodies that cross a trust boundary into the traffic manager, as zod schemas: every
// request a daemon or an agent sends is parsed with these before anything reads it, so a
// malformed, oversized or path-injecting value is a 400 and never reaches the Kubernetes API.
// zod/mini: the functional build tree-shakes, so the in-cluster bundles stay small (the
// classic build adds ~450 KiB to a bundle that must fit a ConfigMap).
import * as z from 'zod/mini';
import { usageError, type TelepodError } from './errors.ts';
import { INTERCEPT_MODES } from './intercept.ts';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A namespace, Service or container name (RFC 1123 label). */
export const kubeLabel = z
  .string()
  .check(z.maxLength(63), z.regex(LABEL, 'is not a Kubernetes name (RFC 1123 label)'));
/** A workload name (RFC 1123 subdomain). */
export const kubeName = z
  .string()
  .check(z.maxLength(253), z.regex(SUBDOMAIN, 'is not a Kubernetes name (RFC 1123 subdomain)'));
/** A TCP port number. */
export const portNumber = z.int().check(z.gte(1), z.lte(65535));
/** An id the manager made (randomUUID). */
export const uuid = z.uuid();

/** POST /sessions */
export const SessionRequestSchema = z.object({
  /** `user@host` of the workstation, shown to other developers. */
  holder: z.string().check(z.minLength(1), z.maxLength(256)),
  /** A reconnecting daemon presents its token to keep its session (and intercepts). */
  resumeToken: z.optional(z.string().check(z.maxLength(128))),
  /** The daemon's telepod and protocol versions; a mismatch is refused with what to run. */
  version: z.optional(z.string().check(z.maxLength(64))),
  protocol: z.optional(z.int()),
});
export type SessionRequest = z.infer<typeof SessionRequestSchema>;

export const PortRequestSchema = z.object({
  /** The workstation port that receives the traffic. */
  local: portNumber,
  /** Service port name or number (intercept/replace), container port (swap/expose). */
  remote: z.optional(
    z.string().check(z.maxLength(63), z.regex(/^[a-z0-9-]+$/, 'is not a port name or number')),
  ),
});
export type PortRequest = z.infer<typeof PortRequestSchema>;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]{1,128}$/;
/** A personal intercept's conditions (see RequestFilter); header names in lower case. */
export const RequestFilterSchema = z.object({
  headers: z
    .array(
      z.object({
        name: z.string().check(z.regex(HEADER_NAME, 'is not a lower-case HTTP header name')),
        // Visible ASCII and spaces: what a header value can carry through HTTP/1 and HTTP/2.
        value: z.string().check(z.regex(/^[ -~]{0,1024}$/, 'is not a printable header value')),
      }),
    )
    .check(z.maxLength(16)),
  pathPrefix: z.optional(
    z.string().check(z.regex(/^\/[!-~]{0,1023}$/, 'must start with / and have no spaces')),
  ),
  method: z.optional(z.string().check(z.regex(/^[A-Z]{1,16}$/, 'is not an HTTP method in upper case'))),
});

/** POST /intercepts. The agent's image is the installer's choice, never the request's. */
export const InterceptRequestSchema = z.object({
  mode: z.enum(INTERCEPT_MODES),
  namespace: kubeLabel,
  /** The workload's name; empty for `expose`. */
  workload: z.union([kubeName, z.literal('')]),
  ports: z.array(PortRequestSchema).check(z.maxLength(64)),
  service: z.optional(kubeLabel),
  container: z.optional(kubeLabel),
  /** How long to wait for the workload's rollout before restoring it. */
  timeoutSeconds: z.optional(z.int().check(z.gte(1), z.lte(3600))),
  /** A personal intercept: only matching requests (mode intercept only). */
  filter: z.optional(RequestFilterSchema),
  /** Copies of the (matching) requests go to the workstation; the app answers (mode intercept only). */
  mirror: z.optional(z.boolean()),
  /**
   * The daemon serves inbound connections for this request's local ports before the manager's
   * answer names the intercept: the manager may then relay a cold intercept's connections while
   * its rollout runs (`src/manager/relay.ts`). An older daemon leaves it out and gets none early.
   */
  earlyInbound: z.optional(z.boolean()),
});
export type InterceptRequest = z.infer<typeof InterceptRequestSchema>;

/** POST /intercepts/context */
export const InterceptRefSchema = z.object({ id: uuid });
/**
 * POST /intercepts/leave. Without `restore`, the last intercept of a workload leaves its agent
 * in place, dormant (requests pass to the app), until the session ends, the idle time passes or
 * a leave with `restore` comes; an older manager ignores `restore` and always restores.
 */
export const LeaveInterceptSchema = z.object({ id: uuid, restore: z.optional(z.boolean()) });
/** The manager's answer to a leave: whether the intercept was the session's, and whether the agent stays. */
export interface LeaveAnswer {
  left: boolean;
  /**
   * What became of the workload's agent: dormant (restored after `dormantSeconds` idle),
   * restored, or still serving other intercepts. Absent from managers before `--agent-idle`,
   * which kept it dormant for DORMANT_AGENT_MINUTES after an intercept's last leave.
   */
  agent?: 'dormant' | 'restored' | 'shared';
  dormantSeconds?: number;
}
/** POST /intercepts/restore: a workload whose agent the session left dormant. */
export const RestoreDormantSchema = z.object({ namespace: kubeLabel, workload: kubeName });
export type RestoreDormantRequest = z.infer<typeof RestoreDormantSchema>;
/** POST /inbound/refused */
export const InboundRefusalSchema = z.object({ conn: uuid, reason: z.string().check(z.maxLength(1024)) });

/** What an agent reports when it registers (the body of its watch request). */
export const AgentHelloSchema = z.object({
  /** The environment the kubelet resolved for the app container, as the agent received it. */
  env: z.record(
    // What Kubernetes allows as a name: printable ASCII without `=`.
    z.string().check(z.regex(/^[!-<>-~]{1,1024}$/, 'is not an environment variable name')),
    z.string().check(z.maxLength(256 * 1024)),
  ),
});
export type AgentHello = z.infer<typeof AgentHelloSchema>;

/** A line on an agent's watch stream (manager → agent). */
export const AgentMessageSchema = z.union([
  z.object({
    intercepted: z.array(portNumber),
    routes: z.optional(
      z.record(
        z.string().check(z.regex(/^\d{1,5}$/)),
        z.array(z.object({ intercept: uuid, filter: z.optional(RequestFilterSchema), mirror: z.boolean() })),
      ),
    ),
  }),
  z.object({ sftp: uuid, mounts: z.array(z.string().check(z.maxLength(4096))) }),
]);

/** Parses `value` with `schema`; a mismatch is a usage error naming each bad field. */
export function parseRequest<T>(schema: z.ZodMiniType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalid(what, result.error);
}

function invalid(what: string, error: z.core.$ZodError): TelepodError {
  const problems = error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
  return usageError(`invalid ${what}: ${problems.join('; ')}`);
}
