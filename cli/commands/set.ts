import { preflight } from '../../lib/preflight.js';
import { parsePid } from '../../lib/proc.js';
import { makeLimit, setRule } from '../../lib/rules.js';
import { parseRate, parseSize } from '../../lib/units.js';
import type { GlobalOptions } from '../context.js';
import { describeLimit } from '../describe.js';

interface SetOptions {
  pid: string;
  rate: string;
  bucket?: string;
  name?: string;
}

export function run(options: SetOptions, { chalk }: GlobalOptions): void {
  const pid = parsePid(options.pid);
  const rate = parseRate(options.rate);
  const limit = makeLimit(rate, options.bucket === undefined ? undefined : parseSize(options.bucket));
  const ctx = preflight({ object: true, mountBpffs: true });
  const result = setRule(ctx, { pid, limit, name: options.name });
  const rule = result.rule;
  const status = result.created ? 'created' : 'changed';
  process.stdout.write(
    `${chalk.bold(rule.name)} ${status}: ${describeLimit(limit)}; pids ${rule.pids.join(' ') || '-'}\n`,
  );
  if (result.previousRule) {
    process.stdout.write(
      `pid ${pid} left rule ${result.previousRule}${result.removedRule ? ', which was empty and is removed' : ''}\n`,
    );
  }
}
