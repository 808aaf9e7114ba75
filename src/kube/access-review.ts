// "Can I?" as the API server answers it for the kubeconfig's own user: one
// SelfSubjectAccessReview per question (what `kubectl auth can-i` sends).
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';

/** One question: a verb on a resource (and subresource) of an API group, in a namespace. */
export interface AccessQuestion {
  verb: string;
  resource: string;
  subresource?: string;
  group?: string;
  namespace?: string;
}

/** Whether the user may do each thing asked, in order (a review that fails answers false, with why). */
export async function canI(
  kc: KubeConfig,
  questions: AccessQuestion[],
): Promise<{ allowed: boolean; reason?: string }[]> {
  const api = kc.makeApiClient(AuthorizationV1Api);
  return Promise.all(
    questions.map(async ({ verb, resource, subresource, group, namespace }) => {
      try {
        const review = await api.createSelfSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: { resourceAttributes: { verb, resource, subresource, group: group ?? '', namespace } },
          },
        });
        return { allowed: review.status?.allowed === true, reason: review.status?.reason };
      } catch (err) {
        return { allowed: false, reason: (err as Error).message };
      }
    }),
  );
}
