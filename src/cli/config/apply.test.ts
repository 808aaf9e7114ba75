// Proves the precedence flag > environment variable > config file > built-in default through the
// real commander program (every command's action replaced by a no-op), for global flags and
// subcommand flags, on every command carrying them; and that a bad file or variable stops a
// command before it runs, while --help and version still work.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Command, CommanderError } from '@commander-js/extra-typings';
import { DEFAULT_IMAGE, DEFAULT_MANAGER_NAMESPACE } from '../../kube/defaults.ts';
import { TelepodError } from '../../protocol/errors.ts';
import { connectOptions } from '../commands/connect.ts';
import { createProgram } from '../program.ts';
import { applyConfig } from './apply.ts';
import { SETTINGS } from './schema.ts';

const VARIABLES = [
  'TELEPOD_CONFIG',
  'XDG_CONFIG_HOME',
  ...Object.values(SETTINGS).flatMap((setting) => (setting.env ? [setting.env] : [])),
];

let saved: Record<string, string | undefined>;
let root: string;
let file: string;

beforeEach(async () => {
  saved = Object.fromEntries(VARIABLES.map((name) => [name, process.env[name]]));
  for (const name of VARIABLES) delete process.env[name];
  root = await mkdtemp(path.join(tmpdir(), 'telepod-config-test-'));
  await mkdir(path.join(root, 'telepod'));
  file = path.join(root, 'telepod', 'config.yaml');
  process.env.XDG_CONFIG_HOME = root; // never the developer's own file
});

afterEach(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await rm(root, { recursive: true, force: true });
});

/** Parses `argv` with every action a no-op; answers the program and the actions that ran. */
async function parse(argv: string[]) {
  const program = createProgram();
  const ran: string[] = [];
  for (const command of program.commands) command.action(() => void ran.push(command.name()));
  await program.parseAsync(argv, { from: 'user' });
  return { program, ran };
}

/** A flag's value and where it came from, on `command` (the program: a global flag). */
async function setting(argv: string[], key: string, command?: string) {
  const { program } = await parse(argv);
  const owner = command ? program.commands.find((c) => c.name() === command)! : program;
  return { value: owner.getOptionValue(key), source: owner.getOptionValueSource(key) };
}

describe('precedence', () => {
  it('namespace (global): file, variable over file, flag over variable, else unset', async () => {
    assert.deepEqual(await setting(['connect'], 'namespace'), { value: undefined, source: undefined });
    await writeFile(file, 'namespace: from-file\n');
    assert.deepEqual(await setting(['connect'], 'namespace'), { value: 'from-file', source: 'config' });
    process.env.TELEPOD_NAMESPACE = 'from-env';
    assert.deepEqual(await setting(['connect'], 'namespace'), { value: 'from-env', source: 'env' });
    assert.deepEqual(await setting(['connect', '-n', 'from-flag'], 'namespace'), {
      value: 'from-flag',
      source: 'cli',
    });
    assert.deepEqual(await setting(['-n', 'before', 'connect'], 'namespace'), {
      value: 'before',
      source: 'cli',
    });
  });

  it('logLevel (global): each layer, and the level reaches a daemon the command starts', async () => {
    assert.deepEqual(await setting(['connect'], 'logLevel'), { value: 'warn', source: 'default' });
    assert.equal(process.env.TELEPOD_LOG_LEVEL, undefined);
    await writeFile(file, 'logLevel: debug\n');
    assert.deepEqual(await setting(['connect'], 'logLevel'), { value: 'debug', source: 'config' });
    assert.equal(process.env.TELEPOD_LOG_LEVEL, 'debug');
    process.env.TELEPOD_LOG_LEVEL = 'info';
    assert.deepEqual(await setting(['connect'], 'logLevel'), { value: 'info', source: 'env' });
    assert.deepEqual(await setting(['connect', '--log-level', 'error'], 'logLevel'), {
      value: 'error',
      source: 'cli',
    });
    assert.equal(process.env.TELEPOD_LOG_LEVEL, 'error');
  });

  it('managerNamespace (connect): each layer', async () => {
    const managerNamespace = (argv: string[]) => setting(argv, 'managerNamespace', 'connect');
    assert.deepEqual(await managerNamespace(['connect']), {
      value: DEFAULT_MANAGER_NAMESPACE,
      source: 'default',
    });
    await writeFile(file, 'managerNamespace: file-tp\n');
    assert.deepEqual(await managerNamespace(['connect']), { value: 'file-tp', source: 'config' });
    process.env.TELEPOD_MANAGER_NAMESPACE = 'env-tp';
    assert.deepEqual(await managerNamespace(['connect']), { value: 'env-tp', source: 'env' });
    assert.deepEqual(await managerNamespace(['connect', '--manager-namespace', 'flag-tp']), {
      value: 'flag-tp',
      source: 'cli',
    });
  });

  it('alsoProxy (connect): a list from each layer replaces the one below, it does not add to it', async () => {
    const alsoProxy = (argv: string[]) => setting(argv, 'alsoProxy', 'connect');
    assert.deepEqual(await alsoProxy(['connect']), { value: [], source: 'default' });
    await writeFile(file, 'alsoProxy: [10.1.0.0/16, 10.2.0.0/16]\n');
    assert.deepEqual(await alsoProxy(['connect']), {
      value: ['10.1.0.0/16', '10.2.0.0/16'],
      source: 'config',
    });
    process.env.TELEPOD_ALSO_PROXY = '10.3.0.0/16, 10.4.0.0/16';
    assert.deepEqual(await alsoProxy(['connect']), { value: ['10.3.0.0/16', '10.4.0.0/16'], source: 'env' });
    assert.deepEqual(
      await alsoProxy(['connect', '--also-proxy', '10.5.0.0/16', '--also-proxy', '10.6.0.0/16']),
      {
        value: ['10.5.0.0/16', '10.6.0.0/16'],
        source: 'cli',
      },
    );
  });

  it('applies to every command carrying the flag', async () => {
    await writeFile(
      file,
      'managerNamespace: file-tp\nimage: file/image:1\nmount: false\nneverProxy: [10.9.0.0/16]\n',
    );
    for (const command of ['connect', 'install', 'uninstall', 'doctor', 'gather-logs'])
      assert.equal((await setting([command], 'managerNamespace', command)).value, 'file-tp', command);
    for (const command of ['connect', 'install'])
      assert.equal((await setting([command], 'image', command)).value, 'file/image:1', command);
    assert.deepEqual((await setting(['run'], 'neverProxy', 'run')).value, ['10.9.0.0/16']);
    for (const [command, ...args] of [['run'], ['intercept', 'app'], ['replace', 'app']])
      assert.equal((await setting([command!, ...args], 'mount', command)).value, 'false', command);
  });

  it('gives the connection list/intercept/replace make the settings a plain connect takes', async () => {
    const connected = async () => {
      const flags = connectOptions(new Command());
      await applyConfig(createProgram(), flags);
      return flags.opts();
    };
    assert.deepEqual(await connected(), {
      alsoProxy: [],
      neverProxy: [],
      managerNamespace: DEFAULT_MANAGER_NAMESPACE,
      image: DEFAULT_IMAGE,
    });
    await writeFile(file, 'managerNamespace: file-tp\nimage: file/image:1\nalsoProxy: [10.1.0.0/16]\n');
    process.env.TELEPOD_NEVER_PROXY = '10.2.0.0/16';
    assert.deepEqual(await connected(), {
      alsoProxy: ['10.1.0.0/16'],
      neverProxy: ['10.2.0.0/16'],
      managerNamespace: 'file-tp',
      image: 'file/image:1',
    });
  });

  it('kubeconfig: $KUBECONFIG hides the file; context comes from the file or the flag', async () => {
    await writeFile(file, 'kubeconfig: /from/file\ncontext: file-ctx\n');
    assert.deepEqual(await setting(['connect'], 'kubeconfig'), { value: '/from/file', source: 'config' });
    assert.deepEqual(await setting(['connect'], 'context'), { value: 'file-ctx', source: 'config' });
    assert.deepEqual(await setting(['connect', '--context', 'flag-ctx'], 'context'), {
      value: 'flag-ctx',
      source: 'cli',
    });
    process.env.KUBECONFIG = '/from/env';
    assert.deepEqual(await setting(['connect'], 'kubeconfig'), { value: undefined, source: undefined });
  });
});

describe('errors', () => {
  const usage = (pattern: RegExp) => (err: unknown) =>
    err instanceof TelepodError && err.exitCode === 2 && pattern.test(err.message);

  it('a bad variable is a usage error naming it, before the command runs', async () => {
    process.env.TELEPOD_ALSO_PROXY = '10.0.0.0/8,nope';
    await assert.rejects(
      parse(['connect']),
      usage(/^\$TELEPOD_ALSO_PROXY: expected an IPv4 CIDR such as 10\.0\.0\.0\/8, not "nope"$/),
    );
    delete process.env.TELEPOD_ALSO_PROXY;
    process.env.TELEPOD_LOG_LEVEL = 'verbose';
    await assert.rejects(
      parse(['status']),
      usage(/^\$TELEPOD_LOG_LEVEL: expected one of error, warn, info, debug, not "verbose"$/),
    );
  });

  it('a bad file stops every command but version and completion before it runs', async () => {
    await writeFile(file, 'alsoProxy: [10.0.0.0/33]\n');
    const program = createProgram();
    let ran = false;
    program.commands.find((c) => c.name() === 'list')!.action(() => void (ran = true));
    await assert.rejects(
      program.parseAsync(['list'], { from: 'user' }),
      usage(
        /^config file \S+config\.yaml: alsoProxy\[0\]: expected an IPv4 CIDR [^\n]+, not "10\.0\.0\.0\/33"$/,
      ),
    );
    assert.equal(ran, false);
    assert.deepEqual((await parse(['version'])).ran, ['version']);
    assert.deepEqual((await parse(['completion', 'bash'])).ran, ['completion']);
    // Completing still runs (commands and flags complete; the file's settings are left out).
    assert.deepEqual((await parse(['__complete', '--', 'inter'])).ran, ['__complete']);
  });

  it('a missing $TELEPOD_CONFIG is a usage error', async () => {
    process.env.TELEPOD_CONFIG = path.join(root, 'missing.yaml');
    await assert.rejects(
      parse(['connect']),
      usage(/missing\.yaml \(from \$TELEPOD_CONFIG\) does not exist$/),
    );
  });

  it('--help works with a broken file, and the error is one line naming the file and the key', async () => {
    await writeFile(file, 'namepsace: shop\n');
    for (const argv of [['--help'], ['connect', '--help']]) {
      const program = createProgram();
      let help = '';
      for (const command of [program, ...program.commands])
        command.configureOutput({ writeOut: (text) => void (help += text) });
      await assert.rejects(
        program.parseAsync(argv, { from: 'user' }),
        (err: unknown) => err instanceof CommanderError && err.exitCode === 0,
      );
      assert.match(help, /^Usage: telepod /);
    }
    await assert.rejects(
      parse(['leave', 'app']),
      usage(/^config file \S+config\.yaml: unknown key "namepsace" \(the keys are [^\n]+\)$/),
    );
  });
});
