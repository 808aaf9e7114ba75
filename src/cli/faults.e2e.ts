// e2e on the testbed: an intercept and the tunnel survive what happens to clusters — the
// manager pod deleted or gone for a while, the agent container killed, the API server
// restarted, the port-forward cut again and again — and each recovery time is measured from
// a poller that asks the intercepted Service every 100 ms from the node (independent of the
// API server). `status` says the truth meanwhile.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import type { DaemonStatus } from '../protocol/daemon-api.ts';
import {
  applyManifest,
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  nodeServerManifest,
  restartApiServer,
  startInWorkstation,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';
import { patternSha256, serverScript } from '../../bench/pattern.ts';

const NS = 'telepod-e2e-faults';
const MANAGER_NS = 'telepod';
const MANAGER_SELECTOR = 'app.kubernetes.io/name=telepod-manager';
const MARKER = `faults-${process.pid}`;
/** The issue's bound: requests reach the workstation again this soon after the new manager is Ready. */
const MANAGER_RECOVERY_LIMIT_S = 5;
const BULK_BYTES = 256 << 20;

let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let localServer: ChildProcess | undefined;
let poller: Poller | undefined;
let mountDir: string;
let bulkPodIP: string;

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
const seconds = (ms: number) => (ms / 1000).toFixed(1);
const report = (line: string) => process.stdout.write(`# ${line}\n`);

/** What every answer of the poller was, by time. */
interface Poll {
  at: number;
  answer: string;
}

/** A client in the node netns asking `url` every 100 ms, one request at a time, 2 s timeout each. */
class Poller {
  readonly polls: Poll[] = [];
  private readonly child: ChildProcess;

  constructor(url: string) {
    const script = `const ask = () => fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.text()).then((t) => t.trim(), (e) => 'error ' + (e.cause?.code ?? e.name))
      .then((a) => { console.log(Date.now() + ' ' + a); setTimeout(ask, 100); });
      ask();`;
    this.child = spawn('nsenter', ['--net=/run/netns/tpbed-node', '--', process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const space = line.indexOf(' ');
      this.polls.push({ at: Number(line.slice(0, space)), answer: line.slice(space + 1) });
    });
  }

  /** When the workstation first answered at or after `since`, waiting up to `timeoutMs`. */
  async workstationAnswers(since: number, timeoutMs = 120_000): Promise<number> {
    let found: Poll | undefined;
    try {
      await waitUntil(`the workstation to answer the poller again`, timeoutMs, () => {
        found = this.polls.find((p) => p.at >= since && p.answer.startsWith(MARKER));
        return Promise.resolve(!!found);
      });
    } catch (err) {
      const answers = new Map<string, number>();
      for (const p of this.polls.filter((p) => p.at >= since))
        answers.set(p.answer, (answers.get(p.answer) ?? 0) + 1);
      throw new Error(`${(err as Error).message}; the poller got ${JSON.stringify([...answers])}`, {
        cause: err,
      });
    }
    return found!.at;
  }

  /** When the first answer that was not the workstation's came at or after `since`, if any. */
  firstMiss(since: number, until = Infinity): number | undefined {
    return this.polls.find((p) => p.at >= since && p.at < until && !p.answer.startsWith(MARKER))?.at;
  }

  /**
   * The longest stretch after `since` in which the workstation answered nothing: from the
   * first answer that was not its own to its next answer.
   */
  longestGap(since: number): { from: number; to: number } | undefined {
    let gap: { from: number; to: number } | undefined;
    let missFrom: number | undefined;
    for (const p of this.polls.filter((p) => p.at >= since)) {
      if (!p.answer.startsWith(MARKER)) missFrom ??= p.at;
      else if (missFrom !== undefined) {
        if (!gap || p.at - missFrom > gap.to - gap.from) gap = { from: missFrom, to: p.at };
        missFrom = undefined;
      }
    }
    return gap;
  }

  /** Answers between two times that came from neither the workstation nor the app. */
  failures(since: number, until: number): Poll[] {
    return this.polls.filter(
      (p) => p.at >= since && p.at < until && !p.answer.startsWith(MARKER) && p.answer !== 'Hello, world!',
    );
  }

  stop(): void {
    this.child.kill();
  }
}

async function status(): Promise<DaemonStatus> {
  const result = await telepod('status', '-o', 'json');
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as DaemonStatus;
}

interface ManagerPod {
  uid: string;
  readyAt?: number;
}

async function managerPods(): Promise<ManagerPod[]> {
  const list = JSON.parse(
    await kubectl(tb, ['-n', MANAGER_NS, 'get', 'pods', '-l', MANAGER_SELECTOR, '-o', 'json']),
  ) as {
    items: {
      metadata: { uid: string; deletionTimestamp?: string };
      status?: { conditions?: { type: string; status: string; lastTransitionTime: string }[] };
    }[];
  };
  return list.items
    .filter((p) => !p.metadata.deletionTimestamp)
    .map((p) => {
      const ready = p.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True');
      return { uid: p.metadata.uid, ...(ready ? { readyAt: Date.parse(ready.lastTransitionTime) } : {}) };
    });
}

/** When a manager pod other than `previous` became Ready (the condition's time, whole seconds: never early). */
async function newManagerReady(previous: string): Promise<number> {
  let readyAt = 0;
  await waitUntil('a new manager pod to be Ready', 120_000, async () => {
    const pod = (await managerPods()).find((p) => p.uid !== previous && p.readyAt !== undefined);
    readyAt = pod?.readyAt ?? 0;
    return !!pod;
  });
  return readyAt;
}

async function currentManager(): Promise<string> {
  const [pod] = await managerPods();
  assert.ok(pod, 'a manager pod runs');
  return pod.uid;
}

/** `status` says the intercept of service-b is effective. */
async function untilEffective(what: string): Promise<void> {
  await waitUntil(what, 60_000, async () => (await status()).intercepts?.[0]?.effective === true);
}

/**
 * Bytes and sha256 of a download from the bulk server, and curl's exit code: by default by its
 * pod IP (through the tunnel and the manager); by Service name it goes straight to the pod.
 */
async function download(bytes: number, rate?: string, host = bulkPodIP) {
  const url = `http://${host}:8000/download?bytes=${bytes}`;
  const limit = rate ? `--limit-rate ${rate}` : '';
  const file = join(tmpdir(), `telepod-faults-${process.pid}.bin`);
  const result = await inWorkstation(tb, 'bash', [
    '-c',
    `curl -sS --max-time 120 ${limit} -o ${file} -w '%{size_download}\\n' ${url}; code=$?; ` +
      `sha256sum ${file}; rm -f ${file}; exit $code`,
  ]);
  const [size, sum] = result.stdout.split('\n');
  return { code: result.code, bytes: Number(size), sha256: sum?.split(' ')[0] };
}

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  await applyManifest(tb, nodeServerManifest(tb, NS, 'bulk', serverScript));
  await waitForRollout(tb, NS, 'bulk');
  bulkPodIP = (
    await kubectl(tb, ['-n', NS, 'get', 'pod', '-l', 'app=bulk', '-o', 'jsonpath={.items[0].status.podIP}'])
  ).trim();
  const script = `require('http').createServer((q, s) => s.end('${MARKER}:' + q.url + '\\n')).listen(8000)`;
  localServer = startInWorkstation(tb, script);
  mountDir = await mkdtemp(join(tmpdir(), 'telepod-faults-'));
  await rm(mountDir, { recursive: true });
  const connected = await telepod('connect');
  assert.equal(connected.code, 0, connected.stderr);
  const intercepted = await telepod('intercept', 'service-b', '--port', '8000', '--mount', mountDir);
  assert.equal(intercepted.code, 0, intercepted.stderr);
  const clusterIP = (
    await kubectl(tb, ['-n', NS, 'get', 'svc', 'service-b', '-o', 'jsonpath={.spec.clusterIP}'])
  ).trim();
  poller = new Poller(`http://${clusterIP}:8000/`);
  await poller.workstationAnswers(0, 30_000);
});

after(async () => {
  poller?.stop();
  localServer?.kill();
  await telepod('quit');
  await kubectl(tb, ['-n', MANAGER_NS, 'scale', 'deploy/telepod-manager', '--replicas=1']).catch(
    () => undefined,
  );
  await deleteNamespace?.();
});

test('the manager pod deleted: the intercept and its volumes come back by themselves, ≤ 5 s after the new manager is Ready', async () => {
  const previous = await currentManager();
  const deleted = Date.now();
  await kubectl(tb, ['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false']);
  const ready = await newManagerReady(previous);
  const back = await poller!.workstationAnswers(Math.max(ready, poller!.firstMiss(deleted) ?? deleted));
  report(
    `manager pod deleted: new manager Ready after ${seconds(ready - deleted)} s; the workstation answered ` +
      `again ${seconds(back - ready)} s after Ready (${seconds(back - deleted)} s after the delete); ` +
      `failed requests meanwhile: ${poller!.failures(deleted, back).length}`,
  );
  assert.ok(back - ready <= MANAGER_RECOVERY_LIMIT_S * 1000, `${seconds(back - ready)} s after Ready`);
  await untilEffective('status to show the intercept effective again');
  const after = await status();
  assert.ok(after.reconnects! >= 1);
  // The same session: the intercept was taken back, not made anew.
  await waitUntil('the volumes to be mounted again', 30_000, async () => {
    const text = await readFile(
      join(mountDir, 'var/run/secrets/kubernetes.io/serviceaccount/namespace'),
      'utf8',
    );
    return text === NS;
  });
});

test('status never lies: with no manager the intercept is shown not effective, with the reason; it clears when the manager is back', async () => {
  await kubectl(tb, ['-n', MANAGER_NS, 'scale', 'deploy/telepod-manager', '--replicas=0']);
  const stopped = Date.now();
  let started: number;
  try {
    let seen: DaemonStatus | undefined;
    // First the agents lose the manager ("no agent … is connected"), then the tunnel drops.
    await waitUntil('status to show the tunnel down and the intercept not effective', 60_000, async () => {
      seen = await status();
      return seen.tunnel?.up === false && seen.intercepts?.[0]?.effective === false;
    });
    assert.equal(seen!.tunnel?.up, false);
    assert.match(
      seen!.intercepts![0]!.problem!,
      /the tunnel to the traffic manager is down for \d+ s; reconnecting/,
    );
    const text = await telepod('status');
    assert.match(text.stdout, /NOT EFFECTIVE: the tunnel to the traffic manager is down/);
    // Meanwhile the cluster's clients are served by the app, not left hanging.
    await waitUntil('the app to answer while no manager runs', 30_000, () =>
      Promise.resolve(poller!.polls.some((p) => p.at > stopped && p.answer === 'Hello, world!')),
    );
  } finally {
    started = Date.now();
    await kubectl(tb, ['-n', MANAGER_NS, 'scale', 'deploy/telepod-manager', '--replicas=1']);
  }
  const back = await poller!.workstationAnswers(started);
  report(
    `manager scaled 0 → 1 after ${seconds(started - stopped)} s: the workstation answered ${seconds(back - started)} s after the scale-up`,
  );
  await untilEffective('status to show the intercept effective again');
  const clear = await telepod('status');
  assert.doesNotMatch(clear.stdout, /NOT EFFECTIVE|DOWN/);
});

test('the manager pod deleted during a 256 MB download through the tunnel: the transfer fails loudly, the next one arrives whole', async () => {
  await untilEffective('the intercept and the tunnel to work');
  const previous = await currentManager();
  const transfer = download(BULK_BYTES, '16M'); // 16 s: the delete lands in the middle
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const deleted = Date.now();
  await kubectl(tb, ['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false']);
  const cut = await transfer;
  assert.notEqual(cut.code, 0, 'an interrupted transfer must fail');
  assert.ok(cut.bytes > 0 && cut.bytes < BULK_BYTES, `${cut.bytes} bytes arrived`);
  const ready = await newManagerReady(previous);
  let reached = 0;
  await waitUntil('a new connection through the tunnel', 60_000, async () => {
    const answer = await inWorkstation(tb, 'curl', ['-sS', '--max-time', '2', `http://${bulkPodIP}:8000/`]);
    reached = Date.now();
    return answer.stdout === 'ok';
  });
  report(
    `manager deleted during a download: it failed after ${cut.bytes} bytes (curl exit ${cut.code}); ` +
      `new connections worked ${seconds(reached - deleted)} s after the delete (${seconds(reached - ready)} s after Ready)`,
  );
  const whole = await download(BULK_BYTES);
  assert.equal(whole.code, 0);
  assert.equal(whole.bytes, BULK_BYTES);
  assert.equal(whole.sha256, patternSha256(BULK_BYTES));
});

test('a download by Service name goes straight to the pod: the manager pod deleted meanwhile does not cut it', async () => {
  await untilEffective('the intercept and the tunnel to work');
  const podConnections = async () => (await status()).podConnections?.direct ?? 0;
  const before = await podConnections();
  await waitUntil('a connection by name to go straight to the pod', 30_000, async () => {
    await inWorkstation(tb, 'curl', ['-sS', '--max-time', '2', 'http://bulk:8000/']);
    return (await podConnections()) > before;
  });
  const previous = await currentManager();
  const transfer = download(BULK_BYTES, '32M', 'bulk'); // 8 s: the delete lands in the middle
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await kubectl(tb, ['-n', MANAGER_NS, 'delete', 'pod', '-l', MANAGER_SELECTOR, '--wait=false']);
  const whole = await transfer;
  assert.equal(whole.code, 0);
  assert.equal(whole.bytes, BULK_BYTES);
  assert.equal(whole.sha256, patternSha256(BULK_BYTES));
  await newManagerReady(previous);
  await untilEffective('the intercept to come back with the new manager');
});

test('the agent container killed while intercepted: the intercept comes back by itself', async () => {
  await untilEffective('the intercept to be effective');
  const killed = Date.now();
  // The exec ends with the container it killed (exit 137) when it loses that race. SIGINT:
  // the agent leaves at once (on SIGTERM it would drain first, as for a deleted pod).
  await kubectl(tb, [
    '-n',
    NS,
    'exec',
    'deploy/service-b',
    '-c',
    'telepod-agent',
    '--',
    'node',
    '-e',
    "process.kill(1, 'SIGINT')",
  ]).catch((err: Error) => assert.match(err.message, /exit code 137/));
  // The agent container restarts; its pod, and so its address, stay.
  await waitUntil('the agent container to have restarted', 60_000, async () => {
    const restarts = await kubectl(tb, [
      '-n',
      NS,
      'get',
      'pods',
      '-l',
      'app=service-b',
      '-o',
      'jsonpath={.items[*].status.containerStatuses[?(@.name=="telepod-agent")].restartCount}',
    ]);
    return restarts.split(' ').some((n) => Number(n) > 0);
  });
  await untilEffective('status to show the intercept effective again');
  const last = await poller!.workstationAnswers(Date.now());
  const gap = poller!.longestGap(killed);
  assert.ok(gap, 'killing the agent interrupts the intercept for a moment');
  report(
    `agent killed: the workstation answered nothing for ${seconds(gap.to - gap.from)} s; ` +
      `failed requests: ${poller!.failures(killed, last).length}`,
  );
});

test('the API server restarted while intercepted: the tunnel and the intercept come back by themselves', async () => {
  const restarting = Date.now();
  await restartApiServer();
  await untilEffective('status to show the intercept effective again');
  const last = await poller!.workstationAnswers(Date.now());
  const gap = poller!.longestGap(restarting);
  report(
    `API server restarted: ${gap ? `the workstation answered nothing for ${seconds(gap.to - gap.from)} s, back ${seconds(gap.to - restarting)} s after the restart began` : 'the workstation never stopped answering'}; ` +
      `failed requests: ${poller!.failures(restarting, last).length}`,
  );
});

test('the port-forward cut 10 times within a minute: the session and its intercept survive', async () => {
  const before = (await status()).reconnects!;
  const apiServer = new URL(/server:\s*(\S+)/.exec(await readFile(tb.workstation.kubeconfig, 'utf8'))![1]!);
  const started = Date.now();
  for (let cut = 0; cut < 10; cut++) {
    // The daemon's connections to the API server: its port-forward, and its own API calls.
    const killed = await inWorkstation(tb, 'ss', [
      '-K',
      '-t',
      'dst',
      apiServer.hostname,
      'dport',
      '=',
      apiServer.port,
    ]);
    assert.equal(killed.code, 0, killed.stderr);
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  const lastCut = Date.now() - 5000;
  const back = await poller!.workstationAnswers(lastCut);
  await untilEffective('status to show the intercept effective');
  const after = await status();
  const gap = poller!.longestGap(started);
  report(
    `port-forward cut 10 times in ${seconds(lastCut - started)} s: ${after.reconnects! - before} reconnects; ` +
      `failed requests over the minute: ${poller!.failures(started, back).length}; ` +
      `longest stretch without the workstation: ${gap ? seconds(gap.to - gap.from) : 0} s`,
  );
  assert.ok(after.reconnects! - before >= 10, `${after.reconnects! - before} reconnects`);
  assert.equal(after.intercepts?.length, 1);
});
