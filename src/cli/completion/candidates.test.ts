// Unit tests of the completion candidates, on telepod's real command tree with a fake lister:
// subcommands, flags, choices, flag values, names looked up with the line's kubeconfig
// selection, and nothing at all when a lookup fails or hangs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeSelection } from '../../kube/config.ts';
import type { WorkloadKind } from '../../kube/completion-names.ts';
import { createProgram } from '../program.ts';
import {
  complete,
  completionLines,
  type Completion,
  type LookupOptions,
  type NameLister,
} from './candidates.ts';

interface Call {
  method: keyof NameLister;
  selection: KubeSelection;
  kinds?: readonly WorkloadKind[];
}

/** A lister that answers fixed names and records what it was asked. */
function fakeLister() {
  const calls: Call[] = [];
  const lister: NameLister = {
    contexts: (selection) => {
      calls.push({ method: 'contexts', selection });
      return ['dev', 'prod'];
    },
    namespaces: (selection) => {
      calls.push({ method: 'namespaces', selection });
      return Promise.resolve(['default', 'team-a']);
    },
    workloads: (selection, kinds) => {
      calls.push({ method: 'workloads', selection, kinds });
      return Promise.resolve(['web', 'worker']);
    },
  };
  return { lister, calls };
}

function values(completion: Completion): string[] | 'files' {
  return completion.files ? 'files' : completion.candidates.map((c) => c.value);
}

async function offered(words: string[], lister = fakeLister().lister, options?: LookupOptions) {
  return values(await complete(createProgram(), words, lister, options));
}

test('a partial command completes to the command', async () => {
  assert.deepEqual(await offered(['inter']), ['intercept']);
});

test('an empty word offers every visible command, not the hidden ones', async () => {
  const words = await offered(['']);
  assert.ok(Array.isArray(words));
  for (const name of ['connect', 'intercept', 'replace', 'leave', 'run', 'completion'])
    assert.ok(words.includes(name));
  assert.ok(!words.includes('daemon'));
  assert.ok(!words.includes('__complete'));
  assert.ok(!words.some((w) => w.startsWith('-')));
});

test("a command's flags and the global flags complete, short ones only after a lone dash", async () => {
  assert.deepEqual(await offered(['intercept', '--env-']), ['--env-file', '--env-syntax', '--env-json']);
  const long = await offered(['intercept', '--']);
  assert.ok(Array.isArray(long));
  for (const flag of ['--port', '--mirror', '--namespace', '--kubeconfig', '--help'])
    assert.ok(long.includes(flag));
  assert.ok(!long.includes('-n'));
  assert.equal(long.filter((flag) => flag === '--help').length, 1);
  const all = await offered(['-']);
  assert.ok(Array.isArray(all));
  assert.ok(all.includes('-n') && all.includes('-o') && all.includes('--namespace'));
  assert.deepEqual(await offered(['-n']), ['-n']);
});

test("a flag's choices complete as its value, also after an equals sign", async () => {
  assert.deepEqual(await offered(['-o', '']), ['text', 'json', 'yaml']);
  assert.deepEqual(await offered(['version', '--log-level', 'd']), ['debug']);
  assert.deepEqual(await offered(['intercept', 'web', '--env-syntax', '']), ['docker', 'sh', 'json']);
  assert.deepEqual(await offered(['--output=j']), ['--output=json']);
});

test("an argument's choices complete: the shells of `completion`", async () => {
  assert.deepEqual(await offered(['completion', '']), ['bash', 'zsh', 'fish']);
});

test('a value given to a flag is skipped, and a path value is left to the shell', async () => {
  assert.deepEqual(await offered(['intercept', '--port', '8080', '']), ['web', 'worker']);
  assert.deepEqual(await offered(['-o', 'json', 'inter']), ['intercept']);
  assert.equal(await offered(['--kubeconfig', '']), 'files');
  assert.equal(await offered(['intercept', 'web', '--env-file', '']), 'files');
  assert.deepEqual(await offered(['connect', '--image', '']), []);
  assert.deepEqual(await offered(['--kubeconfig=']), []);
});

test('namespaces complete for -n and --manager-namespace, contexts for --context', async () => {
  assert.deepEqual(await offered(['-n', '']), ['default', 'team-a']);
  assert.deepEqual(await offered(['connect', '--manager-namespace', 't']), ['team-a']);
  assert.deepEqual(await offered(['--namespace=t']), ['--namespace=team-a']);
  assert.deepEqual(await offered(['status', '--context', '']), ['dev', 'prod']);
});

test("workload names complete for intercept, replace and leave, Deployments for run's --swap-deployment", async () => {
  const { lister, calls } = fakeLister();
  assert.deepEqual(await offered(['intercept', ''], lister), ['web', 'worker']);
  assert.deepEqual(await offered(['replace', 'wo'], lister), ['worker']);
  assert.deepEqual(await offered(['leave', ''], lister), ['web', 'worker']);
  assert.deepEqual(await offered(['run', '--swap-deployment', ''], lister), ['web', 'worker']);
  assert.deepEqual(
    calls.map((c) => c.kinds),
    [
      ['Deployment', 'StatefulSet'],
      ['Deployment', 'StatefulSet'],
      ['Deployment', 'StatefulSet'],
      ['Deployment'],
    ],
  );
  assert.deepEqual(await offered(['intercept', 'web', '']), []);
  assert.deepEqual(await offered(['intercept', 'web', '--', '-']), []);
});

test('lookups use the kubeconfig, context and namespace typed on the line, over the defaults', async () => {
  const { lister, calls } = fakeLister();
  const defaults = { kubeconfig: '/etc/kc', namespace: 'from-config' };
  await offered(['--context', 'prod', 'intercept', '-n', 'team-a', ''], lister, { defaults });
  await offered(['--kubeconfig=/tmp/kc', 'leave', ''], lister, { defaults });
  await offered(['-nteam-b', '--context', ''], lister, { defaults });
  assert.deepEqual(
    calls.map((c) => c.selection),
    [
      { kubeconfig: '/etc/kc', context: 'prod', namespace: 'team-a' },
      { kubeconfig: '/tmp/kc', namespace: 'from-config' },
      { kubeconfig: '/etc/kc', namespace: 'team-b' },
    ],
  );
});

test('a lookup that throws, rejects or hangs offers nothing', async () => {
  const never = new Promise<string[]>(() => undefined);
  const broken: NameLister = {
    contexts: () => {
      throw new Error('no kubeconfig');
    },
    namespaces: () => Promise.reject(new Error('forbidden')),
    workloads: () => never,
  };
  const options = { timeoutMs: 20 };
  assert.deepEqual(await offered(['--context', ''], broken, options), []);
  assert.deepEqual(await offered(['-n', ''], broken, options), []);
  assert.deepEqual(await offered(['intercept', ''], broken, options), []);
  assert.equal(completionLines(await complete(createProgram(), ['-n', ''], broken, options)), '');
});

test("the lister's preparation (loading the library) is not counted in a lookup's time; its failure offers nothing", async () => {
  let loaded = false;
  const slowToLoad: NameLister = {
    prepare: () => new Promise((resolve) => setTimeout(() => resolve((loaded = true)), 60)),
    contexts: () => (loaded ? ['dev'] : []),
    namespaces: () => [],
    workloads: () => [],
  };
  assert.deepEqual(await offered(['--context', ''], slowToLoad, { timeoutMs: 20 }), ['dev']);
  const failsToLoad: NameLister = { ...slowToLoad, prepare: () => Promise.reject(new Error('no module')) };
  assert.deepEqual(await offered(['--context', ''], failsToLoad, { timeoutMs: 20 }), []);
});

test('the lines: a value per line, a tab before its description, or the file directive', () => {
  assert.equal(completionLines({ files: true }), ':files\n');
  assert.equal(
    completionLines({
      files: false,
      candidates: [
        { value: 'intercept', description: 'send\ta workload' },
        { value: 'web' },
        { value: 'bad\nname' },
      ],
    }),
    'intercept\tsend a workload\nweb\n',
  );
});

test('a name with shell syntax or control characters is never offered (bash inserts candidates as they are)', () => {
  const lines = completionLines({
    files: false,
    candidates: [
      { value: 'prod;touch${IFS}/tmp/PWNED;#' },
      { value: 'dev\x1b]0;owned\x07' },
      { value: 'a b' },
      { value: '$(id)' },
      { value: 'arn:aws:eks:eu-west-1:123456789012:cluster/shop' },
      { value: 'gke_project_europe-west1_shop' },
      { value: 'admin@tpbed' },
      { value: '--namespace=team-a' },
      { value: 'ok', description: 'a \x1b[31mred\x1b[0m word' },
    ],
  });
  assert.equal(
    lines,
    'arn:aws:eks:eu-west-1:123456789012:cluster/shop\ngke_project_europe-west1_shop\nadmin@tpbed\n--namespace=team-a\nok\ta ?[31mred?[0m word\n',
  );
});
