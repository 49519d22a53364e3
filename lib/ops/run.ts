/**
 * `limiter run`: a command limited from its first instruction. The child
 * waits on a pipe (fd 3) until it is in its rule, then execs the command, so
 * every socket the command opens is created inside the rule's cgroup.
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import type { Context } from '../context.js';
import { operationFailed } from '../errors.js';
import { cgroupDirOf, cgroupOfPid, listPids, movePid } from '../kernel/cgroup.js';
import type { Limits } from '../kernel/abi.js';
import { removeIfEmpty, ruleDir } from '../store/rule.js';
import { transaction } from '../store/transaction.js';
import { setRule, type SetResult } from './set.js';

export interface RunOptions {
  limits: Partial<Limits>;
  name?: string;
  command: string[];
}

/** Signals passed on to the command. SIGINT and SIGQUIT from a terminal reach it directly. */
const FORWARDED: NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGQUIT'];

/** Runs the command in a fresh rule and resolves with its exit status (128 + signal when killed). */
export async function runLimited(
  ctx: Context,
  options: RunOptions,
  onLimited?: (result: SetResult) => void,
): Promise<number> {
  const origin = cgroupOfPid(process.pid) ?? '/';
  const child = spawn('/bin/sh', ['-c', 'read -r _ <&3; exec 3<&-; exec "$@"', 'limiter-run', ...options.command], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const pid = child.pid;
  if (pid === undefined) {
    await exited.catch(() => {});
    throw operationFailed('spawn-failed', 'cannot start /bin/sh for the command');
  }
  let limited: SetResult;
  try {
    limited = await setRule(ctx, { target: { pid }, limits: options.limits, name: options.name ?? `run-${pid}` });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  const fromTerminal = process.stdin.isTTY === true;
  const forward = (signal: NodeJS.Signals) => {
    if (fromTerminal && (signal === 'SIGINT' || signal === 'SIGQUIT')) return;
    child.kill(signal);
  };
  FORWARDED.forEach((s) => process.on(s, forward));
  try {
    onLimited?.(limited);
    (child.stdio[3] as Writable).end('go\n');
    const { code, signal } = await exited;
    return code ?? 128 + (signal ? osConstants.signals[signal] : 0);
  } finally {
    FORWARDED.forEach((s) => process.off(s, forward));
    await endRun(ctx, limited.rule.name, limited.created, origin);
  }
}

/**
 * Ends a rule that `run` created: processes its command left behind go back
 * to the command's origin, and the rule is removed unless someone else has
 * joined it since. A rule the command only joined (by --name) is left alone.
 */
async function endRun(ctx: Context, name: string, createdByRun: boolean, origin: string): Promise<void> {
  if (!createdByRun) return;
  await transaction(ctx, { attach: false, ending: name }, (t) => {
    const record = t.state.rules[name];
    if (!record) return;
    for (const pid of listPids(ruleDir(ctx, name))) {
      if (!record.members[String(pid)]) movePid(pid, cgroupDirOf(ctx.cgroupMount, origin));
    }
    removeIfEmpty(t, name);
  });
}
