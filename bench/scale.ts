/**
 * Many rules at once. Each rule needs a process in it (a rule whose
 * processes have all gone is removed), so the bench starts that many sleeps
 * and limits them through the library in one transaction, under the
 * instance lock, rather than through thousands of commands; then it times
 * real commands against them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Context } from '../lib/context.js';
import { makeLimit } from '../lib/kernel/abi.js';
import { descendants } from '../lib/kernel/proc.js';
import { setRules } from '../lib/ops/set.js';

/** count sleeping processes, children of one shell; kill() ends them all. */
export async function startSleepers(count: number): Promise<{ pids: number[]; kill(): void }> {
  const shell: ChildProcess = spawn(
    'sh',
    ['-c', `i=0; while [ $i -lt ${count} ]; do sleep 3600 & i=$((i+1)); done; echo started; wait`],
    {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    },
  );
  await new Promise<void>((resolve) => shell.stdout!.once('data', () => resolve()));
  return { pids: descendants(shell.pid!).slice(1), kill: () => process.kill(-shell.pid!, 'SIGKILL') };
}

/** One rule per pid, as `set --pid <pid> --rate <rate>` makes it. */
export async function addRules(ctx: Context, pids: number[], rateBytes: number): Promise<void> {
  const egress = makeLimit(rateBytes);
  await setRules(
    ctx,
    pids.map((pid) => ({ target: { pid }, limits: { egress }, name: `bench-${pid}` })),
  );
}
