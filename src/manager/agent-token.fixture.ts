// Test fixture: a cluster signing key and the pod-bound service-account tokens it signs, for the
// unit tests of the agent authenticator and of the agent pod check.
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import type { KubeApi } from './kube-api.ts';

/** An ES256 key with its id, and its public half as the API server's JWKS lists it. */
export async function signer(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } as JWK };
}

/** A token with `claims`, signed by `key`, for `audience`, valid for ten minutes. */
export function token(
  key: { kid: string; privateKey: CryptoKey },
  claims: Record<string, unknown>,
  audience = 'telepod-agent',
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: key.kid })
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(key.privateKey);
}

/** The claims of a token bound to pod `web-1` (uid `u-1`) in namespace `a`. */
export const bound = { 'kubernetes.io': { namespace: 'a', pod: { name: 'web-1', uid: 'u-1' } } };

/** An API that serves `keys()` as the JWKS and counts its fetches; any other path goes to `other`. */
export function fakeApi(keys: () => JWK[], other?: (path: string) => Promise<unknown>) {
  let fetches = 0;
  const api = {
    get: (path: string) => {
      if (other && path !== '/openid/v1/jwks') return other(path);
      fetches++;
      return Promise.resolve({ keys: keys() });
    },
  } as unknown as KubeApi;
  return { api, fetches: () => fetches };
}
