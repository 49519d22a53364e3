import { preflight } from '../../lib/preflight.js';
import { makeLimit } from '../../lib/rules.js';
import { runLimited } from '../../lib/run.js';
import { parseRate, parseSize } from '../../lib/units.js';
import { log } from '../../lib/log.js';
import { describeLimit } from '../describe.js';

interface RunOptions {
  rate: string;
  bucket?: string;
  name?: string;
  command: string[];
}

export async function run(options: RunOptions): Promise<void> {
  const limit = makeLimit(parseRate(options.rate), options.bucket === undefined ? undefined : parseSize(options.bucket));
  const ctx = preflight({ object: true, mountBpffs: true });
  // stdout belongs to the command: what limiter says goes to stderr.
  process.exitCode = await runLimited(ctx, { limits: { egress: limit }, name: options.name, command: options.command }, (result) =>
    log.info(`${result.rule.name}: ${describeLimit(limit)}`),
  );
}
