// Memory and CPU of telepod's processes on the testbed, read from /proc on the host: the
// daemon (workstation netns) and the manager and agents (pods) all share its PID namespace.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { CommandResult } from '../testbed/lib/testbed.ts';
import { round } from './harness.ts';

/** A process's resident memory (MB) and CPU time so far (s), from /proc. */
export function processUsage(pid: number): { rssMB: number; cpuS: number } {
  const rssKB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { rssMB: round(rssKB / 1024, 1), cpuS: (Number(fields[11]) + Number(fields[12])) / 100 };
}

/** A process's peak resident memory (MB, VmHWM) since it was last reset (`withPeakRss`). */
function peakRssMB(pid: number): number {
  return round(
    Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
    1,
  );
}

/**
 * Runs `work` and measures the daemon's and the manager's peak resident memory over it: the
 * highest each reached (VmHWM, started anew at the current RSS with Linux >= 4.0's clear_refs 5),
 * not one sample of it.
 */
export async function withPeakRss<T>(
  pids: { daemon: number; manager: number },
  work: () => Promise<T>,
): Promise<{ result: T; peakRssMB: { daemon: number; manager: number } }> {
  for (const pid of Object.values(pids)) writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const result = await work();
  return { result, peakRssMB: { daemon: peakRssMB(pids.daemon), manager: peakRssMB(pids.manager) } };
}

/**
 * The first process whose command line matches `pattern`; with `podUids`, the first that also
 * runs in one of those pods (the kubelet's cgroupfs driver names a pod's cgroup `pod<uid>`).
 */
async function pidOf(pattern: string, podUids: string[] = []): Promise<number> {
  const stdout = await new Promise<string>((resolve) => {
    const child = spawn('pgrep', ['-f', pattern], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.on('close', () => resolve(out));
  });
  const inPods = (pid: number) => {
    if (!podUids.length) return true;
    try {
      const cgroups = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      return podUids.some((uid) => cgroups.includes(`pod${uid}`));
    } catch {
      return false; // exited since pgrep saw it
    }
  };
  const pid = stdout.split('\n').filter(Boolean).map(Number).find(inPods);
  if (!pid)
    throw new Error(`no process matches ${pattern}${podUids.length ? ` in pods ${podUids.join(', ')}` : ''}`);
  return pid;
}

/** The connected daemon's PID (from `telepod status`) and the manager's. */
export async function telepodPids(
  telepod: (...args: string[]) => Promise<CommandResult>,
): Promise<{ daemon: number; manager: number }> {
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as { daemonPid: number };
  return { daemon: status.daemonPid, manager: await pidOf('node .*/opt/telepod/manager.mjs') };
}

/** An agent's PID: the first found, or the one in one of the pods `podUids`. */
export function agentPid(podUids: string[] = []): Promise<number> {
  return pidOf('telepod-agent/agent.mjs', podUids);
}
