// `npm run build`: bundles the workstation executable (CLI + daemon) and the in-cluster
// bundles (traffic manager, agent) with esbuild, and refuses an in-cluster bundle that pulls in
// @kubernetes/client-node or outgrows the ConfigMap it ships in.
import { build, type BuildOptions } from 'esbuild';
import { chmod, readdir, rm } from 'node:fs/promises';

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // Maps beside the bundles (not shipped, no comment in them): bench/profile.ts names the
  // source file and line of each function a CPU profile of a minified bundle shows.
  sourcemap: 'external',
  sourcesContent: false,
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  },
};

/** The in-cluster bundle must fit a ConfigMap comfortably (the limit is 1 MiB). */
export const IN_CLUSTER_MAX_BYTES = 256 * 1024;

// Chunks of an earlier build are content-named: remove them rather than ship them.
for (const file of await readdir('dist').catch(() => [])) {
  if (file.startsWith('chunk-')) await rm(`dist/${file}`);
}
const STAND_IN = 'src/kube/whatwg-url-stand-in.ts';
const workstation = await build({
  ...common,
  entryPoints: { telepod: 'src/cli/main.ts' },
  outExtension: { '.js': '.mjs' },
  outdir: 'dist',
  // What a command imports on demand (the Kubernetes client, the daemon) is a chunk of its own:
  // `intercept`, `status` or `leave` on a running daemon read a tenth of the code. Chunks sit
  // beside telepod.mjs: code in them finds the in-cluster bundles next to itself.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  // Every command starts by reading, decoding and compiling this file: without whitespace and
  // with simpler syntax it is less than half the size; names stay, so stack traces stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  // koffi loads a native library that cannot be bundled; it stays a runtime dependency.
  external: ['koffi'],
  // node-fetch's fallback URL class, never used on a supported Node (see the stand-in).
  alias: { 'whatwg-url': `./${STAND_IN}` },
  metafile: true,
  // `--`: node reads `--env-file <path>` anywhere in its arguments (Node 20 and 24 alike) unless
  // they are separated from the script; `telepod intercept --env-file` is telepod's flag.
  banner: { js: `#!/usr/bin/env -S node --\n${common.banner?.js ?? ''}` },
});
await chmod('dist/telepod.mjs', 0o755);
// The stand-in is node-fetch's only: another package that imports `whatwg-url` may need more.
for (const [file, input] of Object.entries(workstation.metafile.inputs)) {
  const usesStandIn = input.imports.some((i) => i.path === STAND_IN);
  if (usesStandIn && !file.startsWith('node_modules/node-fetch/')) {
    throw new Error(`${file} imports whatwg-url, which the workstation bundle replaces by ${STAND_IN}`);
  }
}

const inCluster = await build({
  ...common,
  entryPoints: { manager: 'src/manager/main.ts', agent: 'src/agent/main.ts' },
  outExtension: { '.js': '.mjs' },
  outdir: 'dist',
  minify: true,
  metafile: true,
  // ssh2 (the agent's SFTP packet layer) loads its optional native add-ons in try/catch; left
  // unresolved, they fail there at run time and ssh2 uses its JavaScript code.
  external: ['cpu-features', '*.node'],
});
for (const [file, output] of Object.entries(inCluster.metafile.outputs)) {
  if (file.endsWith('.map')) continue;
  const forbidden = Object.keys(output.inputs).find((input) => input.includes('@kubernetes/client-node'));
  if (forbidden) throw new Error(`${file} must not include @kubernetes/client-node (found ${forbidden})`);
  if (output.bytes > IN_CLUSTER_MAX_BYTES) {
    throw new Error(
      `${file} is ${output.bytes} bytes, over the ${IN_CLUSTER_MAX_BYTES}-byte in-cluster budget`,
    );
  }
  process.stdout.write(`${file}: ${(output.bytes / 1024).toFixed(1)} KiB\n`);
}
