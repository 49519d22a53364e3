import { preflight } from '../../lib/context.js';
import { parsePid } from '../../lib/kernel/proc.js';
import { setRule } from '../../lib/ops/set.js';
import type { GlobalOptions } from '../context.js';
import { describeJoins, describeLimits } from '../describe.js';
import { limitsFromOptions, type LimitOptions } from '../limits.js';

interface SetOptions extends LimitOptions {
  pid: string;
  name?: string;
  tree?: boolean;
}

export async function run(options: SetOptions, { style }: GlobalOptions): Promise<void> {
  const pid = parsePid(options.pid);
  const limits = limitsFromOptions(options);
  const ctx = preflight({ object: true, mountBpffs: true });
  const result = await setRule(ctx, { pid, limits, name: options.name, tree: options.tree });
  const rule = result.rule;
  process.stdout.write(
    `${style.bold(rule.name)} ${result.created ? 'created' : 'changed'}: ${describeLimits(rule)}; pids ${rule.pids.join(' ') || '-'}\n`,
  );
  process.stdout.write(describeJoins(result.joined));
}
