import { preflight } from '../../lib/preflight.js';
import { parsePid } from '../../lib/proc.js';
import { makeLimit, setRule } from '../../lib/rules.js';
import { parseRate, parseSize } from '../../lib/units.js';
import type { GlobalOptions } from '../context.js';
import { describeJoins, describeLimit } from '../describe.js';

interface SetOptions {
  pid: string;
  rate: string;
  bucket?: string;
  name?: string;
  tree?: boolean;
}

export async function run(options: SetOptions, { style }: GlobalOptions): Promise<void> {
  const pid = parsePid(options.pid);
  const rate = parseRate(options.rate);
  const limit = makeLimit(rate, options.bucket === undefined ? undefined : parseSize(options.bucket));
  const ctx = preflight({ object: true, mountBpffs: true });
  const result = await setRule(ctx, { pid, limits: { egress: limit }, name: options.name, tree: options.tree });
  const rule = result.rule;
  process.stdout.write(
    `${style.bold(rule.name)} ${result.created ? 'created' : 'changed'}: ${describeLimit(limit)}; pids ${rule.pids.join(' ') || '-'}\n`,
  );
  process.stdout.write(describeJoins(result.joined));
}
