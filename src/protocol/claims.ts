// How a developer's own Kubernetes rights authorize what the traffic manager does for their
// session (docs/security.md). Before asking for an intercept, the daemon writes a claim with
// the developer's credentials: it annotates the workload (which needs `patch` on it) and, for
// `--swap-deployment` and `run`, creates small claim objects (which need `create` on Deployments
// and Services in the namespace). Each claim carries a proof only the session can compute. The
// manager acts only where it finds the session's claims, so the API server's own RBAC decides,
// and a refusal is the API server's own message to the developer.
import { createHash } from 'node:crypto';

/** A session's claim on a workload: the annotation `claim.telepod.io/<session id>` = proof. */
export const CLAIM_ANNOTATION_PREFIX = 'claim.telepod.io/';
/** Claim objects (Deployments, Services) carry the session id in this label. */
export const CLAIM_LABEL = 'telepod.io/claim';
/** Claim objects are created with this `generateName`: names cannot be patched on, only created. */
export const CLAIM_NAME_PREFIX = 'telepod-claim-';
/** The image of a claim Deployment's template (never pulled: it has no replicas). */
export const CLAIM_IMAGE = 'telepod.invalid/claim';

/** What a claim is about: `patch <resource> <namespace>/<name>` or `create <resource> <namespace>`. */
export function patchSubject(resource: string, namespace: string, name: string): string {
  return `patch ${resource} ${namespace}/${name}`;
}

export function createSubject(resource: 'deployments' | 'services', namespace: string): string {
  return `create ${resource} ${namespace}`;
}

/** The proof for `subject`: a hash of the session's secret token with it, so only that session can make it. */
export function claimProof(sessionToken: string, subject: string): string {
  return createHash('sha256').update(`${sessionToken}\n${subject}`).digest('base64url');
}
