// Unit tests of the rootless namespace's capture table: what goes to the daemon and what stays.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostPortsUpdate, namespaceRuleset } from './ruleset.ts';

test('DNS and every TCP destination go to the holder; loopback only for the machine’s ports', () => {
  const rules = namespaceRuleset({ tcpPort: 4100, dnsPort: 5300 })
    .split('\n')
    .map((l) => l.trim());
  const at = (rule: string) => rules.indexOf(rule);
  // The holder's own connections (intercepts, to the namespace's servers) come first, untouched.
  assert.equal(at('ip saddr 127.0.0.2 return'), 4);
  assert.ok(at('udp dport 53 redirect to :5300') > 4);
  // The holder's own port is never redirected to itself; then the machine's loopback ports;
  // then the namespace's loopback stays its own; every other TCP destination is captured.
  const own = at('ip daddr 127.0.0.0/8 tcp dport 4100 return');
  const host = at('ip daddr 127.0.0.0/8 tcp dport @host_ports redirect to :4100');
  const local = at('ip daddr 127.0.0.0/8 return');
  const rest = at('meta l4proto tcp redirect to :4100');
  assert.ok(own > 0 && own < host && host < local && local < rest, rules.join('\n'));
});

test('the host ports are replaced in one go; none is a flush alone', () => {
  assert.equal(
    hostPortsUpdate([5432, 8080]),
    'flush set ip telepod host_ports\nadd element ip telepod host_ports { 5432, 8080 }\n',
  );
  assert.equal(hostPortsUpdate([]), 'flush set ip telepod host_ports\n');
});
