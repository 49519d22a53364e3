import { diagnose, type Severity } from '../../lib/ops/doctor.js';
import { ExitCode } from '../../lib/errors.js';
import type { GlobalOptions } from '../context.js';
import { writeJson } from '../output.js';

export function run(options: { json?: boolean }, { style }: GlobalOptions): void {
  const checks = diagnose();
  const fatal = checks.filter((c) => c.severity === 'fatal');
  if (options.json) {
    writeJson({ usable: fatal.length === 0, checks });
  } else {
    const label: Record<Severity, string> = {
      ok: style.green('ok     '),
      info: 'info   ',
      warning: style.yellow('warning'),
      problem: style.red('problem'),
      fatal: style.alarm('FATAL  '),
    };
    for (const c of checks) {
      process.stdout.write(`${label[c.severity]}  ${c.name}: ${c.detail}\n`);
      if (c.hint) process.stdout.write(`         hint: ${c.hint}\n`);
    }
  }
  if (fatal.some((c) => c.name === 'privileges')) process.exitCode = ExitCode.notPermitted;
  else if (fatal.length > 0) process.exitCode = ExitCode.unsupported;
  else if (checks.some((c) => c.severity === 'problem')) process.exitCode = ExitCode.failed;
}
