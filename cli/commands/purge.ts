import { preflight } from '../../lib/preflight.js';
import { purge } from '../../lib/rules.js';

export function run(): void {
  const ctx = preflight();
  const result = purge(ctx);
  process.stdout.write(
    `purged instance ${ctx.instance.name}: ${result.rules.length} rule(s) removed, ${result.pids.length} process(es) moved back\n`,
  );
}
