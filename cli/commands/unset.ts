import { preflight } from '../../lib/context.js';
import { parsePid } from '../../lib/kernel/proc.js';
import { unsetPid } from '../../lib/ops/unset.js';

export async function run(options: { pid: string; tree?: boolean }): Promise<void> {
  const pid = parsePid(options.pid);
  const ctx = preflight();
  for (const result of await unsetPid(ctx, pid, options.tree)) {
    process.stdout.write(
      `pid ${result.pid} left rule ${result.rule} for cgroup ${result.origin}${result.removedRule ? `; rule ${result.rule} removed` : ''}\n`,
    );
  }
}
