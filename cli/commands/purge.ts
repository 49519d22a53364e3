import { preflight } from '../../lib/context.js';
import { purge } from '../../lib/ops/purge.js';

export async function run(): Promise<void> {
  const ctx = preflight();
  const result = await purge(ctx);
  process.stdout.write(
    `purged instance ${ctx.instance.name}: ${result.rules.length} rule(s) removed, ${result.pids.length} process(es) moved back\n`,
  );
}
