// `npm run demo`: the main job end to end on the testbed, in two scenes.
//  1. service-b in the cluster, reached from the workstation netns: `telepod connect`,
//     `curl http://service-b:8000/`, `telepod quit`.
//  2. service-b developed on the workstation: a local service-b answers service-a's request in the
//     cluster, through `telepod run --swap-deployment service-b --expose 8000 -- <command>`; on
//     exit the cluster's service-b answers service-a again.
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  SEED_PROBE,
  startInWorkstation,
  telepodInWorkstation,
  waitUntil,
  type CommandResult,
} from '../testbed/lib/testbed.ts';

const NS = 'demo';
const LOCAL_ANSWER = 'Hello from service-b on your workstation!';

const tb = await ensureTestbed();
process.stdout.write(`\n== deploying the seed's service-b and service-a in namespace ${NS}\n`);
await createNamespace(tb, NS);
await deploySeed(tb, NS);

async function step(title: string, command: Promise<CommandResult>): Promise<CommandResult> {
  process.stdout.write(`\n== [workstation] $ ${title}\n`);
  const result = await command;
  process.stdout.write(result.stdout + result.stderr);
  return result;
}

const telepod = (...args: string[]) => step(`telepod ${args.join(' ')}`, telepodInWorkstation(tb, ...args));
const curl = (url: string) => step(`curl ${url}`, inWorkstation(tb, 'curl', ['-sS', '--max-time', '5', url]));

process.stdout.write('\n=== 1. the cluster from the workstation\n');
await curl('http://service-b:8000/'); // before: the workstation reaches nothing of the cluster
const connected = await telepod('-n', NS, 'connect');
const answered = await curl('http://service-b:8000/');
await telepod('status');
await telepod('quit');
const first = connected.code === 0 && answered.stdout === 'Hello, world!\n';

process.stdout.write('\n=== 2. the cluster calls the service-b you run on the workstation\n');
process.stdout.write(`\n== [workstation] a local service-b on port 8000 answers "${LOCAL_ANSWER}"\n`);
const local = startInWorkstation(
  tb,
  `require('http').createServer((q, s) => s.end(${JSON.stringify(`${LOCAL_ANSWER}\n`)})).listen(8000)`,
);
// service-a (in the cluster) calls service-b; the Service's endpoints move to telepod's proxy a
// moment after it is ready, so ask until the workstation answers (at most 15 s).
const ask =
  'for i in $(seq 30); do out=$(curl -sS --max-time 2 http://service-a:8000/); ' +
  `case "$out" in *workstation*) echo "$out"; exit 0;; esac; sleep 0.5; done; echo "$out"; exit 1`;
const swapped = await step(
  `telepod -n ${NS} run --swap-deployment service-b --expose 8000 -- sh -c 'curl http://service-a:8000/ ...'`,
  telepodInWorkstation(
    tb,
    '-n',
    NS,
    'run',
    '--swap-deployment',
    'service-b',
    '--expose',
    '8000',
    '--',
    'sh',
    '-c',
    ask,
  ),
);
local.kill();
// On exit the original service-b is scaled back: service-a gets the cluster's answer again once
// its pod is ready (asked from inside service-a, as in scene 2).
process.stdout.write(
  '\n== [cluster] service-a asks service-b again, until the cluster answers (at most 60 s)\n',
);
let after = '';
const restored = await waitUntil('service-b in the cluster to answer again', 60_000, async () => {
  after = await kubectl(tb, ['-n', NS, 'exec', 'deploy/service-a', '--', ...SEED_PROBE]).catch(() => '');
  return after === 'service-a got: Hello, world!\n';
}).then(
  () => true,
  () => false,
);
process.stdout.write(after);
const second = swapped.code === 0 && swapped.stdout === `service-a got: ${LOCAL_ANSWER}\n` && restored;

process.exitCode = first && second ? 0 : 1;
process.stdout.write(`\n== demo ${process.exitCode === 0 ? 'succeeded' : 'FAILED'}\n`);
