// `npm run demo`: the main job end to end on the testbed — service-b in the cluster, then, from
// the workstation netns, `telepod connect`, `curl http://service-b:8000/`, `telepod quit`.
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  telepodInWorkstation,
  type CommandResult,
} from '../testbed/lib/testbed.ts';

const NS = 'demo';

const tb = await ensureTestbed();
process.stdout.write(`\n== deploying the seed's service-b and service-a in namespace ${NS}\n`);
await createNamespace(tb, NS);
await deploySeed(tb, NS);

async function step(title: string, command: Promise<CommandResult>): Promise<number> {
  process.stdout.write(`\n== [workstation] $ ${title}\n`);
  const result = await command;
  process.stdout.write(result.stdout + result.stderr);
  return result.code;
}

const telepod = (...args: string[]) => step(`telepod ${args.join(' ')}`, telepodInWorkstation(tb, ...args));
const curl = (url: string) => step(`curl ${url}`, inWorkstation(tb, 'curl', ['-sS', '--max-time', '5', url]));

await curl('http://service-b:8000/'); // before: the workstation reaches nothing of the cluster
const connected = await telepod('-n', NS, 'connect');
const answered = await curl('http://service-b:8000/');
await telepod('status');
await telepod('quit');
process.exitCode = connected === 0 && answered === 0 ? 0 : 1;
process.stdout.write(`\n== demo ${process.exitCode === 0 ? 'succeeded' : 'FAILED'}\n`);
