// Who an agent stream comes from. An agent presents its pod's projected service-account token
// (audience `telepod-agent`, minted and rotated by the kubelet, bound to the pod), which the
// manager verifies against the cluster's own signing keys: the JWKS of the API server's
// service-account issuer discovery, which every service account may read. No TokenReview, so
// the manager needs no cluster-wide right for it (docs/security.md). `jose` checks the
// signature, expiry and audience; the caller then checks the pod it names.
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import { AGENT_AUDIENCE } from '../protocol/intercept.ts';
import { TelepodError } from '../protocol/errors.ts';
import type { KubeApi } from './kube-api.ts';

/** The caller did not prove it is an agent (HTTP 401). */
export class Unauthenticated extends TelepodError {
  readonly status = 401;
}

/** The pod a verified token is bound to. */
export interface TokenPod {
  namespace: string;
  name: string;
  uid: string;
}

interface ServiceAccountClaims {
  'kubernetes.io'?: { namespace?: string; pod?: { name?: string; uid?: string } };
}

/** How long a verified token is taken without checking it again. */
const CACHE_MS = 60_000;
const CACHE_MAX = 10_000;
/** Unknown signing keys refetch the key set, at most this often. */
const REFETCH_MS = 10_000;

export class AgentAuthenticator {
  /** The key set, or its fetch in flight: one fetch serves every caller. */
  private keys?: { set: Promise<ReturnType<typeof createLocalJWKSet>>; fetched: number; failed?: boolean };
  private readonly verified = new Map<string, { pod: TokenPod; until: number }>();

  constructor(
    private readonly api: KubeApi,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The cluster's signing keys. `refresh` (a token names an unknown key) fetches them again, at
   * most every 10 s however many callers ask; a failed fetch is forgotten, so the next caller
   * retries, but not sooner than that either.
   */
  private keySet(refresh: boolean): Promise<ReturnType<typeof createLocalJWKSet>> {
    const stale =
      !this.keys || ((refresh || this.keys.failed) && this.now() - this.keys.fetched > REFETCH_MS);
    if (this.keys && !stale) return this.keys.set;
    const set = this.api
      .get<JSONWebKeySet & Record<string, unknown>>('/openid/v1/jwks')
      .then((jwks) => createLocalJWKSet(jwks));
    const keys: NonNullable<typeof this.keys> = { set, fetched: this.now() };
    this.keys = keys;
    set.catch(() => (keys.failed = true));
    return set;
  }

  /** The pod behind `authorization: Bearer <token>`; throws Unauthenticated otherwise. */
  async verify(authorization: string | undefined): Promise<TokenPod> {
    const token = /^Bearer ([A-Za-z0-9._-]{1,8192})$/.exec(authorization ?? '')?.[1];
    if (!token) throw new Unauthenticated('an agent must present its service-account token');
    const cached = this.verified.get(token);
    if (cached && cached.until > this.now()) return cached.pod;
    const pod = await this.check(token).catch((err: unknown) => {
      if (err instanceof errors.JOSEError) throw new Unauthenticated(`not an agent token: ${err.code}`);
      throw new Unauthenticated(`agent tokens cannot be checked now: ${(err as Error).message}`);
    });
    if (this.verified.size >= CACHE_MAX) this.verified.clear();
    this.verified.set(token, { pod: pod.pod, until: Math.min(pod.expires, this.now() + CACHE_MS) });
    return pod.pod;
  }

  private async check(token: string): Promise<{ pod: TokenPod; expires: number }> {
    const options = {
      audience: AGENT_AUDIENCE,
      algorithms: ['RS256', 'ES256', 'ES384', 'RS384', 'RS512', 'PS256'],
    };
    let result;
    try {
      result = await jwtVerify<ServiceAccountClaims>(token, await this.keySet(false), options);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      result = await jwtVerify<ServiceAccountClaims>(token, await this.keySet(true), options); // keys rotated
    }
    const claims = result.payload['kubernetes.io'];
    const { namespace } = claims ?? {};
    const { name, uid } = claims?.pod ?? {};
    if (!namespace || !name || !uid) throw new Unauthenticated('the token is not bound to a pod');
    return { pod: { namespace, name, uid }, expires: (result.payload.exp ?? 0) * 1000 };
  }
}
