// ESLint flat config: typescript-eslint's type-checked rules, which catch the floating and
// misused promises that matter most in socket daemons.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** One no-restricted-imports rule per process folder: the folders it may not import. */
function boundaries() {
  const forbidden = {
    cli: ['daemon', 'manager', 'agent'],
    daemon: ['cli', 'manager', 'agent'],
    manager: ['cli', 'daemon', 'agent', 'kube'],
    agent: ['cli', 'daemon', 'manager', 'kube'],
    kube: ['cli', 'daemon', 'manager', 'agent'],
    protocol: ['cli', 'daemon', 'manager', 'agent', 'kube'],
  };
  const inCluster = ['manager', 'agent'];
  return Object.entries(forbidden).map(([folder, others]) => ({
    files: [`src/${folder}/**/*.ts`],
    ignores: ['**/*.test.ts', '**/*.e2e.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...others.map((other) => ({
              group: [`**/${other}/*`],
              message: `src/${folder} may import only src/protocol${inCluster.includes(folder) ? '' : ' and src/kube'} across processes`,
            })),
            ...(inCluster.includes(folder)
              ? [
                  {
                    group: ['@kubernetes/client-node'],
                    message: 'in-cluster code uses its own small API client',
                  },
                ]
              : []),
          ],
        },
      ],
    },
  }));
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['test', 'describe', 'it', 'suite', 'before', 'after'],
            },
          ],
        },
      ],
    },
  },
  // Processes stay apart (docs/architecture.md): each imports only src/protocol across the line,
  // the workstation side also src/kube; in-cluster code never the Kubernetes client library.
  ...boundaries(),
  { files: ['eslint.config.js'], extends: [tseslint.configs.disableTypeChecked] },
);
