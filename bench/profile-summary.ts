// Summarizes a V8 CPU profile (.cpuprofile, as the inspector's Profiler.stop gives it): where
// the process spent its time, by module (a package, a telepod source file, a Node.js subsystem)
// and by function. Functions in a bundle are named by their source file and line through the
// bundle's source map (the in-cluster bundles are minified: their own names mean nothing).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { originalPositionFor, TraceMap } from '@jridgewell/trace-mapping';

/** The parts of a V8 CPU profile this summary reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    hitCount?: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }[];
  startTime: number;
  endTime: number;
}

/** A place in the code and the time spent in it (self time). */
export interface Spent {
  name: string;
  ms: number;
  /** Percent of the time the process was not idle. */
  percent: number;
}

/** What a profile says, in milliseconds of its wall time. */
export interface ProfileSummary {
  wallMs: number;
  busyMs: number;
  modules: Spent[];
  functions: Spent[];
}

/** Resolves a position in a bundle (by its file name) to its source file and line. */
export type SourceResolver = (
  url: string,
  line: number,
  column: number,
) => { source: string; line: number } | undefined;

/**
 * Source maps of the bundles in `dir` (`<bundle>.map`), read
 * when first needed. A bundle running elsewhere (the manager's, in its pod) is known by name.
 */
export function bundleSourceMaps(dir: string): SourceResolver {
  const maps = new Map<string, TraceMap | undefined>();
  return (url, line, column) => {
    const bundle = url.includes('/dist/') ? url.slice(url.lastIndexOf('/dist/') + 6) : path.basename(url);
    if (!bundle.endsWith('.mjs')) return undefined;
    if (!maps.has(bundle)) {
      try {
        maps.set(bundle, new TraceMap(readFileSync(path.join(dir, `${bundle}.map`), 'utf8')));
      } catch {
        maps.set(bundle, undefined);
      }
    }
    const map = maps.get(bundle);
    if (!map) return undefined;
    const found = originalPositionFor(map, { line: line + 1, column });
    return found.source ? { source: found.source, line: found.line ?? 0 } : undefined;
  };
}

/** The module a source file belongs to: a package, or a path under src/. */
export function moduleOf(source: string): string {
  const inPackage = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(source);
  if (inPackage) return inPackage[1]!;
  const inSrc = /(?:^|\/)(src\/.*)$/.exec(source);
  return inSrc ? inSrc[1]! : source;
}

/** A Node.js built-in's subsystem: `node:internal/http2/core` → `node:http2`. */
function nodeSubsystem(url: string): string {
  const [first, second] = url.replace(/^node:/, '').split('/');
  return `node:${first === 'internal' && second ? second.replace(/\.js$/, '') : first}`;
}

function place(
  frame: CpuProfile['nodes'][number]['callFrame'],
  resolve: SourceResolver,
): { module: string; fn: string } {
  const { functionName, url, lineNumber, columnNumber } = frame;
  if (!url) return { module: functionName.startsWith('(') ? functionName : '(native)', fn: functionName };
  if (url.startsWith('node:')) {
    return { module: nodeSubsystem(url), fn: `${functionName || '(anonymous)'} ${url}:${lineNumber + 1}` };
  }
  const original = resolve(url, lineNumber, columnNumber);
  if (original) {
    const module = moduleOf(original.source);
    return { module, fn: `${functionName || '(anonymous)'} ${module}:${original.line}` };
  }
  return {
    module: path.basename(url),
    fn: `${functionName || '(anonymous)'} ${path.basename(url)}:${lineNumber + 1}`,
  };
}

function ranked(totals: Map<string, number>, busyMs: number, count: number): Spent[] {
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => ({
      name,
      ms: Math.round(ms),
      percent: busyMs ? Math.round((1000 * ms) / busyMs) / 10 : 0,
    }));
}

/** Self time by module and by function, the top `count` of each, idle time left out. */
export function summarizeProfile(profile: CpuProfile, resolve: SourceResolver, count = 15): ProfileSummary {
  const wallMs = (profile.endTime - profile.startTime) / 1000;
  const hits = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const msPerHit = hits ? wallMs / hits : 0;
  const modules = new Map<string, number>();
  const functions = new Map<string, number>();
  let busyMs = 0;
  for (const node of profile.nodes) {
    const ms = (node.hitCount ?? 0) * msPerHit;
    if (!ms || node.callFrame.functionName === '(idle)') continue;
    busyMs += ms;
    const { module, fn } = place(node.callFrame, resolve);
    modules.set(module, (modules.get(module) ?? 0) + ms);
    functions.set(fn, (functions.get(fn) ?? 0) + ms);
  }
  return {
    wallMs: Math.round(wallMs),
    busyMs: Math.round(busyMs),
    modules: ranked(modules, busyMs, count),
    functions: ranked(functions, busyMs, count),
  };
}
