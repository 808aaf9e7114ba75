// Proves the capture ruleset: the API server is left alone, DNS to the machine's nameservers is
// redirected except from the daemon's own upstream port, TCP for the subnets goes to the listener.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rulesetFor } from './nft.ts';

test('ruleset with DNS', () => {
  const ruleset = rulesetFor({
    subnets: ['10.96.0.0/16', '10.244.0.0/16'],
    exclude: ['10.91.0.1'],
    tcpPort: 40000,
    dns: { servers: ['10.255.255.53'], port: 40001, upstreamSourcePort: 40002 },
  });
  const rules = ruleset.split('\n').map((l) => l.trim());
  assert.equal(rules[0], 'table ip telepod {');
  const exclude = rules.indexOf('ip daddr { 10.91.0.1 } return');
  const dns = rules.indexOf('ip daddr { 10.255.255.53 } udp dport 53 udp sport != 40002 redirect to :40001');
  const tcp = rules.indexOf('ip daddr { 10.96.0.0/16, 10.244.0.0/16 } meta l4proto tcp redirect to :40000');
  assert.ok(exclude > 0 && dns > exclude && tcp > dns, ruleset);
});

test('ruleset without DNS or exclusions redirects only TCP', () => {
  const ruleset = rulesetFor({ subnets: ['10.0.0.0/8'], exclude: [], tcpPort: 1234 });
  assert.doesNotMatch(ruleset, /dport 53|return/);
  assert.match(ruleset, /ip daddr \{ 10\.0\.0\.0\/8 \} meta l4proto tcp redirect to :1234/);
});
