import { preflight } from '../../lib/context.js';
import { setRule } from '../../lib/ops/set.js';
import type { GlobalOptions } from '../context.js';
import { describeInPlace, describeJoins, describeLimits } from '../describe.js';
import { limitsFromOptions, type LimitOptions } from '../limits.js';
import { targetFromOptions, type TargetOptions } from '../target.js';

interface SetOptions extends LimitOptions, TargetOptions {
  name?: string;
}

export async function run(options: SetOptions, { style }: GlobalOptions): Promise<void> {
  const target = targetFromOptions('set', options, true);
  const limits = limitsFromOptions(options);
  const ctx = preflight({ object: true, mountBpffs: true });
  const { rule, created, joined } = await setRule(ctx, { target, limits, name: options.name });
  const processes = rule.target.kind === 'pid' ? `; pids ${rule.pids.join(' ') || '-'}` : '';
  process.stdout.write(
    `${style.bold(rule.name)} ${created ? 'created' : 'changed'}: ${describeLimits(rule)}${processes}\n`,
  );
  process.stdout.write(rule.target.kind === 'pid' ? describeJoins(joined, rule) : describeInPlace(rule));
}
