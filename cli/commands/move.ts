import { usageError } from '../../lib/errors.js';
import { preflight } from '../../lib/context.js';
import { parsePid } from '../../lib/kernel/proc.js';
import { moveToRule, type MoveTarget } from '../../lib/ops/move.js';
import { describeJoins } from '../describe.js';

interface MoveOptions {
  pid: string;
  cgroupPath?: string;
  cgid?: string;
  last?: boolean;
  tree?: boolean;
}

function target(options: MoveOptions): MoveTarget {
  const given = [options.cgroupPath !== undefined, options.cgid !== undefined, options.last === true].filter(Boolean);
  if (given.length !== 1) {
    throw usageError('bad-target', 'move needs exactly one of --cgroup-path, --cgid and --last');
  }
  if (options.cgroupPath !== undefined) {
    if (options.cgroupPath === '') throw usageError('bad-target', 'empty --cgroup-path');
    return { cgroupPath: options.cgroupPath };
  }
  if (options.cgid !== undefined) {
    if (!/^\d+$/.test(options.cgid) || !Number.isSafeInteger(Number(options.cgid)) || Number(options.cgid) < 1) {
      throw usageError('bad-cgid', `invalid cgroup id '${options.cgid}': expected a positive whole number`);
    }
    return { cgroupId: Number(options.cgid) };
  }
  return { last: true };
}

export async function run(options: MoveOptions): Promise<void> {
  const pid = parsePid(options.pid);
  const to = target(options);
  const ctx = preflight();
  const result = await moveToRule(ctx, pid, to, options.tree);
  if (result.joined.length === 0) process.stdout.write(`pid ${pid} is already in rule ${result.rule.name}\n`);
  else process.stdout.write(`rule ${result.rule.name}:\n${describeJoins(result.joined, result.rule)}`);
}
