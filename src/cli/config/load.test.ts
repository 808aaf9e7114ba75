// Proves where the config file is looked for and how a bad one reads: a usage error in one line
// naming the file, the key and what is expected; a missing default file is no config.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TelepodError } from '../../protocol/errors.ts';
import { configPath, loadConfig } from './load.ts';

describe('loadConfig', () => {
  let root: string;
  let file: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'telepod-config-test-'));
    await mkdir(path.join(root, 'telepod'));
    file = path.join(root, 'telepod', 'config.yaml');
  });
  after(() => rm(root, { recursive: true, force: true }));

  /** Loads `text` as the config file named by $TELEPOD_CONFIG. */
  async function load(text: string) {
    await writeFile(file, text);
    return loadConfig({ TELEPOD_CONFIG: file });
  }

  /** A usage error whose message is exactly `message`. */
  const usage = (message: string) => (err: unknown) => {
    assert.ok(err instanceof TelepodError);
    assert.equal(err.exitCode, 2);
    assert.equal(err.message, message);
    return true;
  };

  it('is $TELEPOD_CONFIG, else under an absolute $XDG_CONFIG_HOME, else ~/.config', () => {
    assert.deepEqual(configPath({ TELEPOD_CONFIG: '/etc/t.yaml', XDG_CONFIG_HOME: '/x' }), {
      file: '/etc/t.yaml',
      explicit: true,
    });
    assert.deepEqual(configPath({ XDG_CONFIG_HOME: '/x' }), {
      file: '/x/telepod/config.yaml',
      explicit: false,
    });
    const home = path.join(homedir(), '.config', 'telepod', 'config.yaml');
    assert.deepEqual(configPath({ XDG_CONFIG_HOME: 'relative' }), { file: home, explicit: false });
    assert.deepEqual(configPath({ TELEPOD_CONFIG: '' }), { file: home, explicit: false });
  });

  it('gives no config when the default file is missing', async () => {
    assert.equal(await loadConfig({ XDG_CONFIG_HOME: path.join(root, 'nothing-here') }), undefined);
  });

  it('refuses a $TELEPOD_CONFIG that does not exist', async () => {
    const missing = path.join(root, 'missing.yaml');
    await assert.rejects(
      () => loadConfig({ TELEPOD_CONFIG: missing }),
      usage(`config file ${missing} (from $TELEPOD_CONFIG) does not exist`),
    );
  });

  it('reads the default file, and an empty one as no settings', async () => {
    await writeFile(file, 'namespace: shop\n');
    assert.deepEqual(await loadConfig({ XDG_CONFIG_HOME: root }), { file, config: { namespace: 'shop' } });
    assert.deepEqual(await load(''), { file, config: {} });
  });

  it('takes every key', async () => {
    const text = [
      'namespace: shop',
      'managerNamespace: tp',
      'image: registry.local/node:22',
      'logLevel: debug',
      'alsoProxy: [10.0.0.0/8]',
      'neverProxy: [10.1.0.0/16, 10.2.0.0/16]',
      'mount: false',
      'kubeconfig: /k/config',
      'context: dev',
    ].join('\n');
    assert.deepEqual((await load(text))?.config, {
      namespace: 'shop',
      managerNamespace: 'tp',
      image: 'registry.local/node:22',
      logLevel: 'debug',
      alsoProxy: ['10.0.0.0/8'],
      neverProxy: ['10.1.0.0/16', '10.2.0.0/16'],
      mount: false,
      kubeconfig: '/k/config',
      context: 'dev',
    });
  });

  it('resolves paths: ~/ from the home folder, relative ones from the file, mount keywords kept', async () => {
    assert.deepEqual((await load('kubeconfig: ~/k.yaml\nmount: volumes\n'))?.config, {
      kubeconfig: path.join(homedir(), 'k.yaml'),
      mount: path.join(root, 'telepod', 'volumes'),
    });
    assert.deepEqual((await load('mount: "false"\n'))?.config, { mount: 'false' });
  });

  it('names an unknown key and the file', async () => {
    await assert.rejects(
      load('namespace: shop\nnamepsace: shop\n'),
      usage(
        `config file ${file}: unknown key "namepsace" (the keys are namespace, managerNamespace, image, ` +
          'logLevel, alsoProxy, neverProxy, mount, kubeconfig, context)',
      ),
    );
  });

  it('names a bad CIDR, its key and what is expected', async () => {
    await assert.rejects(
      load('alsoProxy:\n  - 10.0.0.0/8\n  - 10.0.0.1\n'),
      usage(`config file ${file}: alsoProxy[1]: expected an IPv4 CIDR such as 10.0.0.0/8, not "10.0.0.1"`),
    );
    await assert.rejects(
      load('neverProxy: 10.0.0.0/8\n'),
      usage(
        `config file ${file}: neverProxy: expected a list of IPv4 CIDRs such as [10.0.0.0/8], not "10.0.0.0/8"`,
      ),
    );
  });

  it('names bad values of the other kinds', async () => {
    await assert.rejects(
      load('logLevel: verbose\n'),
      usage(`config file ${file}: logLevel: expected one of error, warn, info, debug, not "verbose"`),
    );
    await assert.rejects(
      load('managerNamespace: Telepod\n'),
      usage(
        `config file ${file}: managerNamespace: expected a namespace name (RFC 1123 label), not "Telepod"`,
      ),
    );
    await assert.rejects(
      load('mount: 3\n'),
      usage(`config file ${file}: mount: expected true, false or a folder path, not 3`),
    );
    await assert.rejects(
      load('- namespace: shop\n'),
      usage(`config file ${file}: expected a mapping of settings such as "namespace: my-ns", not a list`),
    );
  });

  it('reports YAML that does not parse in one line, with its place', async () => {
    await assert.rejects(
      load('namespace: shop\nnamespace: other\n'),
      usage(`config file ${file}: not valid YAML: Map keys must be unique at line 2, column 1`),
    );
  });
});
