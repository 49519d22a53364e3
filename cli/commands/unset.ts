import { preflight } from '../../lib/context.js';
import { unsetInPlace, unsetPid } from '../../lib/ops/unset.js';
import { targetFromOptions, type TargetOptions } from '../target.js';

export async function run(options: TargetOptions): Promise<void> {
  const target = targetFromOptions('unset', options, true);
  const ctx = preflight();
  if ('pid' in target) {
    for (const result of await unsetPid(ctx, target.pid, target.tree)) {
      const removed = result.removedRule ? `; rule ${result.rule} removed` : '';
      process.stdout.write(`pid ${result.pid} left rule ${result.rule} for cgroup ${result.origin}${removed}\n`);
    }
    return;
  }
  const result = await unsetInPlace(ctx, target);
  process.stdout.write(`rule ${result.rule} removed: ${result.path} is no longer limited; nothing in it was changed\n`);
}
