// Unit tests of the port-sharing rules: who may join a port, in which order requests are
// matched, what agents are told, which Service ports cannot be routed per request, and which
// requests are refused before the cluster is read.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { InterceptInfo, RequestFilter } from '../protocol/intercept.ts';
import {
  agentMessage,
  checkedRequest,
  matchesEverything,
  normalizedFilter,
  notHttpReason,
  portConflict,
  type PortHolder,
} from './port-sharing.ts';

let next = 0;
function holder(
  who: string,
  extra: { filter?: RequestFilter; mirror?: boolean } = {},
  port = 19000,
): PortHolder {
  const id = `00000000-0000-4000-8000-${String(++next).padStart(12, '0')}`;
  const info: InterceptInfo = {
    id,
    mode: 'intercept',
    namespace: 'ns',
    workload: 'w',
    kind: 'Deployment',
    holder: who,
    ports: [{ local: 8080, remote: 'svc:80', agentPort: port }],
    ...extra,
  };
  return { info, sessionId: `session-${who}` };
}
const dev = (value: string): RequestFilter => ({ headers: [{ name: 'x-dev', value }] });

test('filtered intercepts of different sessions share a port; a whole-port one shares with no one', () => {
  const a = holder('a', { filter: dev('a') });
  assert.equal(portConflict([a], { filter: dev('b') }, 'session-b', 'p'), undefined);
  assert.equal(portConflict([a], { mirror: true }, 'session-b', 'p'), undefined);
  assert.match(
    portConflict([a], {}, 'session-b', 'p') ?? '',
    /personal intercepts or mirrors of a \(x-dev=a\)/,
  );
  const whole = holder('w');
  assert.match(
    portConflict([whole], { filter: dev('b') }, 'session-b', 'p') ?? '',
    /already intercepted by w$/,
  );
});

test('the same filter twice, or a second intercept of one session on a port, is refused', () => {
  const a = holder('a', { filter: dev('a') });
  // Restated, a filter is the same filter: not a more specific one that would take a's requests.
  const restated = normalizedFilter({ headers: [...dev('a').headers, ...dev('a').headers], pathPrefix: '/' });
  assert.deepEqual(restated, dev('a'));
  assert.match(portConflict([a], { filter: restated }, 'session-b', 'p') ?? '', /same filter by a/);
  assert.match(portConflict([a], { filter: dev('a') }, 'session-b', 'p') ?? '', /same filter by a/);
  assert.match(portConflict([a], { filter: dev('c') }, 'session-a', 'p') ?? '', /by this session/);
  // A mirror of the same filter is not a twin: it takes nothing away.
  assert.equal(portConflict([a], { filter: dev('a'), mirror: true }, 'session-b', 'p'), undefined);
});

test('agents get whole-port intercepts apart, and each port routes most specific first, then oldest', () => {
  const broad = holder('broad', { filter: dev('x') });
  const narrow = holder('narrow', { filter: { ...dev('x'), pathPrefix: '/api' } });
  const mirror = holder('m', { mirror: true });
  const whole = holder('whole', {}, 19001);
  const message = agentMessage([broad, narrow, mirror, whole]);
  assert.deepEqual(message.intercepted, [19001]);
  assert.deepEqual(
    message.routes?.['19000']?.map((r) => r.intercept),
    [narrow.info.id, broad.info.id, mirror.info.id],
  );
  assert.deepEqual(message.routes?.['19001'], [{ intercept: whole.info.id, mirror: false }]);
});

test('a header beats a path: a path or a method alone is everyone', () => {
  const path = holder('path', { filter: { headers: [], pathPrefix: '/api/v2' } });
  const header = holder('header', { filter: dev('x') });
  const method = holder('method', { filter: { ...dev('x'), method: 'POST' } });
  const message = agentMessage([path, header, method]);
  assert.deepEqual(
    message.routes?.['19000']?.map((r) => r.intercept),
    [method.info.id, header.info.id, path.info.id],
  );
  assert.equal(matchesEverything({ headers: [], pathPrefix: '/' }), true);
  assert.equal(matchesEverything({ headers: [], pathPrefix: '/a' }), false);
  assert.equal(matchesEverything({ headers: [], method: 'GET' }), false);
});

test('ports declared as TLS or another protocol cannot be routed per request', () => {
  assert.equal(notHttpReason({ port: 80, name: 'http' }), undefined);
  assert.equal(notHttpReason({ port: 80, name: 'grpc-api' }), undefined);
  assert.equal(notHttpReason({ port: 80, appProtocol: 'kubernetes.io/h2c' }), undefined);
  assert.match(notHttpReason({ port: 443, name: 'https' }) ?? '', /name https says it carries https/);
  assert.match(notHttpReason({ port: 5432, name: 'tcp-db' }) ?? '', /carries tcp/);
  assert.match(
    notHttpReason({ port: 80, name: 'http', appProtocol: 'kubernetes.io/wss' }) ?? '',
    /appProtocol/,
  );
});

test('a request is checked before the cluster is read: its filter normalized, what cannot be asked refused', () => {
  const request = {
    mode: 'intercept' as const,
    namespace: 'ns',
    workload: 'w',
    ports: [{ local: 8080 }],
  };
  assert.deepEqual(checkedRequest(request, undefined), request);
  const filter = { headers: [{ name: 'X-Me', value: 'yes' }] };
  assert.deepEqual(checkedRequest({ ...request, filter }, ['ns']).filter, normalizedFilter(filter));
  assert.throws(() => checkedRequest({ ...request, ports: [] }, undefined), /give at least one port/);
  assert.throws(
    () =>
      checkedRequest({ ...request, mode: 'replace', filter: { headers: [], pathPrefix: '/a' } }, undefined),
    /only an intercept can filter requests/,
  );
  assert.throws(
    () => checkedRequest({ ...request, filter: { headers: [] } }, undefined),
    /this filter matches every request/,
  );
  assert.throws(
    () => checkedRequest(request, ['other']),
    /installed for namespaces other only, not ns .*--namespaces other,ns/,
  );
});
