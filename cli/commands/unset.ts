import { preflight } from '../../lib/preflight.js';
import { parsePid } from '../../lib/proc.js';
import { unsetPid } from '../../lib/rules.js';

export function run(options: { pid: string }): void {
  const pid = parsePid(options.pid);
  const ctx = preflight();
  const result = unsetPid(ctx, pid);
  process.stdout.write(
    `pid ${pid} left rule ${result.rule} for cgroup ${result.origin}${result.removedRule ? `; rule ${result.rule} removed` : ''}\n`,
  );
}
