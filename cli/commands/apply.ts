import { preflight } from '../../lib/context.js';
import type { Limits } from '../../lib/kernel/abi.js';
import { apply, type Change } from '../../lib/ops/apply.js';
import { DEFAULT_RULES_FILE, readRules } from '../../lib/ops/rules-file.js';
import type { GlobalOptions } from '../context.js';
import { describeLimit, describeTarget } from '../describe.js';

interface ApplyOptions {
  file?: string;
  dryRun?: boolean;
  unit?: string;
}

const limits = (change: { limits: Limits }) =>
  [
    change.limits.egress.rate ? `upload ${describeLimit(change.limits.egress)}` : null,
    change.limits.ingress.rate ? `download ${describeLimit(change.limits.ingress)}` : null,
  ]
    .filter(Boolean)
    .join('; ');

function line(change: Change): string {
  switch (change.kind) {
    case 'create':
      return `+ ${change.name}: ${describeTarget(change.target)}: ${limits(change)}`;
    case 'change':
      return `~ ${change.name}: ${describeTarget(change.target)}: ${limits(change)}`;
    case 'remove':
      return `- ${change.name}: ${describeTarget(change.target)} no longer limited`;
    case 'waiting':
      return `. ${change.name}: waiting: ${change.why}; its limit is applied when it starts`;
  }
}

export async function run(options: ApplyOptions, { style }: GlobalOptions): Promise<void> {
  const file = options.file ?? DEFAULT_RULES_FILE;
  const rules = readRules(file, options.file !== undefined);
  const ctx = preflight({ object: true, mountBpffs: true });
  const result = await apply(ctx, rules, { file, dryRun: options.dryRun, unit: options.unit });
  const verb = options.dryRun ? 'would change' : 'changed';
  for (const change of result.changes) process.stdout.write(`${line(change)}\n`);
  const changed = result.changes.filter((c) => c.kind !== 'waiting').length;
  if (changed === 0) process.stdout.write(`${style.bold('no changes')}: ${result.unchanged} rule(s) as in ${file}\n`);
  else if (options.dryRun) process.stdout.write(`dry run: ${changed} rule(s) ${verb}, nothing was done\n`);
}
