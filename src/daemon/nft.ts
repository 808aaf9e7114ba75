// The daemon's one kernel side effect for capture: an nftables table of its own (ip telepod)
// that redirects TCP for the cluster subnets to the outbound listener and DNS to the DNS
// server, plus a port-less bridge carrying routes for subnets the machine has no route to.
// Everything has a fixed name, so a daemon after a crash removes what the last one left.
import { execFile, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { captureMarker } from '../protocol/daemon-api.ts';

const run = promisify(execFile);
export const TABLE = 'telepod';
export const BRIDGE = 'telepod0';

export interface CaptureRules {
  subnets: string[];
  /** Never redirected (the API server, so the tunnel itself is not captured). */
  exclude: string[];
  tcpPort: number;
  dns?: { servers: string[]; port: number; upstreamSourcePort: number };
}

export function rulesetFor(rules: CaptureRules): string {
  const lines = [
    `table ip ${TABLE} {`,
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
  ];
  if (rules.exclude.length) lines.push(`    ip daddr { ${rules.exclude.join(', ')} } return`);
  if (rules.dns) {
    const servers = rules.dns.servers.join(', ');
    lines.push(
      `    ip daddr { ${servers} } udp dport 53 udp sport != ${rules.dns.upstreamSourcePort} redirect to :${rules.dns.port}`,
    );
  }
  lines.push(
    `    ip daddr { ${rules.subnets.join(', ')} } meta l4proto tcp redirect to :${rules.tcpPort}`,
    '  }',
    '}',
  );
  return `${lines.join('\n')}\n`;
}

async function nft(input: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft failed: ${stderr.trim()}`))));
    child.stdin.end(input);
  });
}

async function routeExists(address: string): Promise<boolean> {
  try {
    await run('ip', ['route', 'get', address]);
    return true;
  } catch {
    return false;
  }
}

/** Installs the table, and routes (via the bridge) for destinations that have none. */
export async function installCapture(rules: CaptureRules): Promise<void> {
  await deleteRules(); // the flows are forgotten once, after the new rules are in place
  const unrouted: string[] = [];
  for (const cidr of [...rules.subnets, ...(rules.dns?.servers ?? [])]) {
    if (!(await routeExists(cidr.split('/')[0]!))) unrouted.push(cidr);
  }
  if (unrouted.length) {
    await run('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    await run('ip', ['link', 'set', BRIDGE, 'up']);
    for (const cidr of unrouted) await run('ip', ['route', 'add', cidr, 'dev', BRIDGE]);
  }
  await nft(rulesetFor(rules));
  await forgetDnsFlows();
  writeFileSync(captureMarker(), `${process.pid}\n`, { mode: 0o644 });
}

/**
 * Forgets the kernel's NAT state of DNS flows. A UDP flow keeps its redirect (to a daemon's
 * DNS port) for up to two minutes after the rule is gone, so a query that reuses a source port
 * went to a port nobody listens on after quit or a reconnect ("connection refused"). Needs
 * `conntrack` (conntrack-tools); without it, those flows simply expire.
 */
async function forgetDnsFlows(): Promise<void> {
  await run('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', '53']).catch(() => undefined);
}

async function deleteRules(): Promise<void> {
  await run('nft', ['delete', 'table', 'ip', TABLE]).catch(() => undefined);
  await run('ip', ['link', 'del', BRIDGE]).catch(() => undefined);
  rmSync(captureMarker(), { force: true });
}

/** Removes the table and the bridge (with its routes); nothing to remove is fine. */
export async function removeCapture(): Promise<void> {
  await deleteRules();
  await forgetDnsFlows();
}
