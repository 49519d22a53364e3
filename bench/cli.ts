/** Wall time of limiter commands, as a ratio to `node -e ''` measured in the same run. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../lib/instance.js';

export interface CliTiming {
  command: string;
  medianMs: number;
  ratioToNode: number;
}

const RUNS = 9;

/** The median, or NaN for no values. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
}

/** Median wall time of a command over RUNS runs; prepare() runs untimed before each. */
export function timeCommand(argv: string[], env: NodeJS.ProcessEnv, prepare?: () => string[]): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const extra = prepare?.() ?? [];
    const start = process.hrtime.bigint();
    const result = spawnSync(argv[0], [...argv.slice(1), ...extra], {
      env: { ...process.env, ...env },
      stdio: 'ignore',
    });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (result.status !== 0) throw new Error(`${argv.join(' ')} ${extra.join(' ')} exited ${result.status}`);
  }
  return median(times);
}

export const limiterArgv = () => [process.execPath, join(packageRoot(), 'dist', 'limiter.mjs')];
export const nodeBaseline = () => timeCommand([process.execPath, '-e', ''], {});
