// The completion scripts run in the real shells (bash, zsh and fish: scripts/test-deps.sh
// installs them), with `telepod` a shell function that runs this checkout's CLI: bash's
// function on COMP_* variables, zsh's under compinit (its _describe and _files replaced by
// printers), fish's through its own `complete -C`. Plus the `completion` command itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { completionScript } from './scripts.ts';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const main = join(repo, 'src/cli/main.ts');

/** This process's environment without the developer's telepod settings and kubeconfig. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith('TELEPOD_') && name !== 'KUBECONFIG'),
);
cleanEnv.XDG_CONFIG_HOME = mkdtempSync(join(tmpdir(), 'telepod-completion-config-'));
after(() => rmSync(cleanEnv.XDG_CONFIG_HOME!, { recursive: true, force: true }));

/** Runs `shell` with `args`; the script, node and the CLI are in $SCRIPT, $NODE and $MAIN. */
function run(shell: string, args: string[], script: string) {
  const result = spawnSync(shell, args, {
    cwd: repo,
    encoding: 'utf8',
    env: { ...cleanEnv, SCRIPT: script, NODE: process.execPath, MAIN: main },
  });
  assert.equal(result.stderr, '');
  assert.equal(result.status, 0);
  return result.stdout;
}

/** A kubeconfig with two contexts, one with colons in its name as EKS's have. */
function withKubeconfig(body: (file: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'telepod-completion-'));
  try {
    const file = join(dir, 'config');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]',
        'users: [{name: u, user: {token: t}}]',
        'contexts:',
        '- {name: dev, context: {cluster: c, user: u}}',
        '- {name: "arn:aws:eks:eu-west-1:1:cluster/prod", context: {cluster: c, user: u}}',
        'current-context: dev',
      ].join('\n'),
    );
    body(file);
  } finally {
    rmSync(dir, { recursive: true });
  }
}

test('`completion` prints the script; an unknown shell is a usage error', () => {
  const printed = spawnSync(process.execPath, ['--import', 'tsx', main, 'completion', 'fish'], {
    cwd: repo,
    encoding: 'utf8',
  });
  assert.equal(printed.status, 0);
  assert.equal(printed.stdout, completionScript('fish'));
  const unknown = spawnSync(process.execPath, ['--import', 'tsx', main, 'completion', 'tcsh'], {
    cwd: repo,
    encoding: 'utf8',
  });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Allowed choices are bash, zsh, fish/);
});

// complete_line sets COMP_* as bash does for the line (the cursor at its end) and prints the
// replies between brackets, one per line.
const bashDriver = `
telepod() { "$NODE" --import tsx "$MAIN" "$@"; }
source <(printf '%s' "$SCRIPT")
complete -p telepod
complete_line() {
  COMP_LINE=$1 COMP_POINT=\${#1}
  COMP_WORDBREAKS=$' \\t\\n"\\'><=;|&(:'
  read -ra COMP_WORDS <<<"$1"
  COMP_CWORD=$((\${#COMP_WORDS[@]} - 1))
  _telepod
  printf '[%s]\\n' "\${COMPREPLY[@]}"
}
complete_line 'telepod inter'
complete_line "telepod --kubeconfig $1 --context=arn:aws:eks:eu"
`;

test('bash: the script completes a command, and a value after =, cut at the last colon', () => {
  withKubeconfig((kubeconfig) => {
    const out = run(
      'bash',
      ['--norc', '--noprofile', '-c', bashDriver, 'bash', kubeconfig],
      completionScript('bash'),
    );
    assert.equal(out, 'complete -F _telepod telepod\n[intercept]\n[eu-west-1:1:cluster/prod]\n');
  });
});

// complete_line sets the completion system's words, CURRENT and PREFIX for the line.
const zshDriver = `
telepod() { "$NODE" --import tsx "$MAIN" "$@"; }
autoload -U compinit && compinit -u -D
source <(print -rn -- "$SCRIPT")
print -r -- "registered $_comps[telepod]"
_describe() { print -rl -- "\${(@P)argv[-1]}"; }
_files() { print -r -- files; }
complete_line() {
  local -a words=("\${@[1,-2]}" "$argv[-1]")
  local CURRENT=$#words PREFIX=$argv[-1]
  _telepod
}
complete_line telepod inter
complete_line telepod --kubeconfig "$1" --context ''
complete_line telepod --kubeconfig ''
`;

test('zsh: the script parses, registers under compinit, and offers described candidates or files', () => {
  const script = completionScript('zsh');
  run('zsh', ['-n', '-c', script], script);
  withKubeconfig((kubeconfig) => {
    const out = run('zsh', ['-f', '-c', zshDriver, 'zsh', kubeconfig], script);
    assert.equal(
      out,
      [
        'registered _telepod',
        "intercept:send a workload's connections on some Service ports to local ports",
        'dev',
        'arn\\:aws\\:eks\\:eu-west-1\\:1\\:cluster/prod',
        'files',
        '',
      ].join('\n'),
    );
  });
});

const fishDriver = `
function telepod; $NODE --import tsx $MAIN $argv; end
printf '%s' $SCRIPT | source
complete -C 'telepod inter'
complete -C "telepod --kubeconfig $argv[1] --context "
`;

test("fish: the script parses, and fish's own completion of a line uses it", () => {
  const script = completionScript('fish');
  run('fish', ['--no-config', '-n', '-c', script], script);
  withKubeconfig((kubeconfig) => {
    const out = run('fish', ['--no-config', '-c', fishDriver, kubeconfig], script);
    assert.equal(
      out,
      [
        "intercept\tsend a workload's connections on some Service ports to local ports",
        'arn:aws:eks:eu-west-1:1:cluster/prod',
        'dev',
        '',
      ].join('\n'),
    );
  });
});
