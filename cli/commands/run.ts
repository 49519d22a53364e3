import { log } from '../../lib/log.js';
import { preflight } from '../../lib/context.js';
import { runLimited } from '../../lib/ops/run.js';
import { describeLimits } from '../describe.js';
import { limitsFromOptions, type LimitOptions } from '../limits.js';

interface RunOptions extends LimitOptions {
  name?: string;
  command: string[];
}

export async function run(options: RunOptions): Promise<void> {
  const limits = limitsFromOptions(options);
  const ctx = preflight({ object: true, mountBpffs: true });
  // stdout belongs to the command: what limiter says goes to stderr.
  process.exitCode = await runLimited(ctx, { limits, name: options.name, command: options.command }, (result) =>
    log.info(`${result.rule.name}: ${describeLimits(result.rule)}`),
  );
}
