// Turns what the Kubernetes client throws into messages for people: the API server's own words
// for a refusal (they name the verb and the resource), and which server could not be reached.
import { TelepodError } from '../protocol/errors.ts';

function apiMessage(body: unknown): string | undefined {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body) as unknown;
    } catch {
      return body || undefined;
    }
  }
  const message = (value as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : undefined;
}

export function explainKubeError(err: unknown, server: string): Error {
  if (err instanceof TelepodError) return err;
  const e = err as { code?: unknown; body?: unknown; message?: string; cause?: { code?: string } };
  if (e.code === 403) return new TelepodError(`not allowed: ${apiMessage(e.body) ?? 'forbidden'}`);
  if (e.code === 401)
    return new TelepodError(`the API server ${server} rejected the kubeconfig's credentials`);
  const text = `${e.message ?? ''} ${e.cause?.code ?? ''} ${typeof e.code === 'string' ? e.code : ''}`;
  if (/ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN/.test(text)) {
    return new TelepodError(`cannot reach the API server ${server}: ${e.message ?? text.trim()}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}
