/** Shared by the cli and kernel tiers: run the built CLI, own a unique instance, clean it up. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { BPFFS_ROOT, packageRoot, RUN_ROOT } from '../../lib/instance.js';
import type { KernelView } from '../../lib/kernel/inspect.js';

export const CLI = join(packageRoot(), 'bin', 'limiter');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, options: SpawnSyncOptions = {}): CliResult {
  const result = spawnSync(CLI, args, {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', ...env },
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024,
    ...options,
  });
  return { code: result.status, stdout: String(result.stdout), stderr: String(result.stderr) };
}

let counter = 0;
/** A name no other test, run or installation uses. */
export function uniqueInstance(tag: string): string {
  counter += 1;
  return `lt_${tag}_${process.pid}_${counter}`.slice(0, 64);
}

/** Where an instance keeps things: every path must be gone after purge. */
export function instanceFootprint(instance: string): string[] {
  const cgroupDir = join(findCgroup2Mount(), instance);
  return [cgroupDir, join(BPFFS_ROOT, instance), join(RUN_ROOT, instance)].filter((p) => existsSync(p));
}

/**
 * Removes an instance whatever state a failed test left it in: first the
 * tool's own purge, then by hand (rule cgroups must be empty: tests end
 * their processes before this).
 */
export function destroyInstance(instance: string): void {
  runCli(['purge'], { LIMITER_INSTANCE: instance });
  const cgroupDir = join(findCgroup2Mount(), instance);
  if (existsSync(cgroupDir)) {
    for (const child of readdirSync(cgroupDir, { withFileTypes: true })) {
      if (child.isDirectory()) rmdirQuiet(join(cgroupDir, child.name));
    }
    rmdirQuiet(cgroupDir);
  }
  const bpffsDir = join(BPFFS_ROOT, instance);
  if (existsSync(bpffsDir)) {
    for (const pin of readdirSync(bpffsDir)) unlinkSync(join(bpffsDir, pin));
    rmdirQuiet(bpffsDir);
  }
  rmSync(join(RUN_ROOT, instance), { recursive: true, force: true });
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // reported by the footprint check of the test that left it
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The cgroup v2 path of a process, from /proc/<pid>/cgroup. */
export const cgroupOf = (pid: number) => /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))![1];

export interface JsonRule {
  name: string;
  target: 'pid' | 'cgroup' | 'unit' | 'container';
  source: 'cli' | 'file';
  targetPath: string | null;
  cgroupId: number;
  cgroupPath: string;
  rateBytesPerSec: number | null;
  bucketBytes: number | null;
  pids: number[];
  passedBytes: number;
  droppedPackets: number;
  ingressRateBytesPerSec: number | null;
  ingressBucketBytes: number | null;
  ingressPassedBytes: number;
  adoptedSockets: number;
  adopted: { egress: number; ingress: number; listeners: number };
  slot: number | null;
}

export const listJson = (env: NodeJS.ProcessEnv, ...args: string[]) =>
  JSON.parse(runCli(['list', '--json', ...args], env).stdout) as { rules: JsonRule[]; bpf?: KernelView };
