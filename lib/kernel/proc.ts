import { readdirSync, readFileSync } from 'node:fs';
import { errnoCode, notFound, usageError } from '../errors.js';

const PF_KTHREAD = 0x00200000;

export interface ProcessInfo {
  pid: number;
  comm: string;
  /** Start time in clock ticks since boot: tells a pid from a later process that reused it. */
  startTime: number;
  isKernelThread: boolean;
}

/** Parses a pid argument: a positive decimal integer no larger than the kernel allows. */
export function parsePid(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw usageError('bad-pid', `invalid pid '${text}': expected a positive whole number`);
  }
  const pid = Number(text);
  if (pid < 1 || pid > pidMax()) {
    throw usageError('bad-pid', `invalid pid '${text}': out of range (1 to ${pidMax()})`);
  }
  return pid;
}

function pidMax(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  } catch {
    return 4194304;
  }
}

/** Information about a live process, or null when no process has that pid (or only its zombie). */
export function readProcess(pid: number): ProcessInfo | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ESRCH') return null;
    throw err;
  }
  // comm may contain spaces and parentheses; the fields after it are plain.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state) of proc(5).
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  const flags = Number(fields[9 - 3]);
  return {
    pid,
    comm,
    startTime: Number(fields[22 - 3]),
    isKernelThread: (flags & PF_KTHREAD) !== 0,
  };
}

/** The live user process with this pid, or a typed error. */
export function requireUserProcess(pid: number): ProcessInfo {
  const info = readProcess(pid);
  if (!info) throw notFound('no-such-pid', `no process with pid ${pid}`);
  if (info.isKernelThread) {
    throw usageError(
      'kernel-thread',
      `pid ${pid} (${info.comm}) is a kernel thread; only user processes can be limited`,
    );
  }
  return info;
}

/** pid and every process descended from it, parents first. */
export function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // exited while we looked
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}
