// The flags of a personal intercept (`--http-header`, `--http-path-prefix`, `--http-method`)
// as the RequestFilter the manager checks, and the ready-to-paste request that would match it.
import { usageError } from '../protocol/errors.ts';
import type { InterceptInfo, RequestFilter } from '../protocol/intercept.ts';
import { parseRequest, RequestFilterSchema } from '../protocol/requests.ts';

/** `--http-header name=value`, repeatable: collects [name, value] pairs. */
export function headerCollector(value: string, previous: [string, string][]): [string, string][] {
  const equals = value.indexOf('=');
  if (equals < 1) throw usageError(`--http-header ${value}: expected <name>=<value>`);
  return [...previous, [value.slice(0, equals).trim().toLowerCase(), value.slice(equals + 1)]];
}

/** The filter the flags describe, or undefined when none was given; invalid values are usage errors. */
export function requestFilter(flags: {
  httpHeader: [string, string][];
  httpPathPrefix?: string | undefined;
  httpMethod?: string | undefined;
}): RequestFilter | undefined {
  if (!flags.httpHeader.length && flags.httpPathPrefix === undefined && flags.httpMethod === undefined) {
    return undefined;
  }
  const filter = {
    headers: flags.httpHeader.map(([name, value]) => ({ name, value })),
    ...(flags.httpPathPrefix !== undefined ? { pathPrefix: flags.httpPathPrefix } : {}),
    ...(flags.httpMethod !== undefined ? { method: flags.httpMethod.toUpperCase() } : {}),
  };
  return parseRequest(RequestFilterSchema, filter, '--http-* filter');
}

function quoted(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** A curl command that the intercept would take (or mirror), for each of its Service ports. */
export function matchingRequests(info: InterceptInfo): string[] {
  const { filter } = info;
  if (!filter && !info.mirror) return [];
  return info.ports.map((port) => {
    const [service, rest = ''] = port.remote.split(':');
    const number = rest.split('/')[0];
    const url = `http://${service}.${info.namespace}:${number}${filter?.pathPrefix ?? '/'}`;
    const method = filter?.method && filter.method !== 'GET' ? ` -X ${filter.method}` : '';
    const headers = (filter?.headers ?? []).map((h) => ` -H ${quoted(`${h.name}: ${h.value}`)}`).join('');
    return `curl${method}${headers} ${url}`;
  });
}
