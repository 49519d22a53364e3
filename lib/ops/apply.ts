/**
 * `limiter apply`: makes the kernel match the rules file. It creates,
 * changes and removes the rules that came from the file, and never touches a
 * rule made with `set`. A rule unchanged is not written (tokens and counters
 * carry on); a unit that is not running is waiting, not an error.
 */
import type { Context } from '../context.js';
import { LimiterError, operationFailed, usageError } from '../errors.js';
import { DIRECTIONS, type Limits } from '../kernel/abi.js';
import { kernelRules, openMaps, type KernelRule } from '../kernel/maps.js';
import { changeLimits, createRule, dropRecord, kernelOf, type Transaction } from '../store/rule.js';
import { loadState, type RuleTarget, type State } from '../store/state.js';
import { transaction } from '../store/transaction.js';
import { syncDropIns } from './dropins.js';
import type { FileRule } from './rules-file.js';
import { resolveInPlace, type InPlaceTarget } from './target.js';

export type Change =
  | { kind: 'create'; name: string; target: RuleTarget; limits: Limits }
  | { kind: 'change'; name: string; target: RuleTarget; before: Limits; limits: Limits }
  | { kind: 'remove'; name: string; target: RuleTarget }
  | { kind: 'waiting'; name: string; why: string };

export interface ApplyOptions {
  /** the file the rules came from, for messages and the drop-ins */
  file: string;
  dryRun?: boolean;
  /** only the rules of this unit (what a unit's drop-in runs when it starts) */
  unit?: string;
}

const sameLimits = (a: Limits, b: Limits) =>
  DIRECTIONS.every((d) => a[d].rate === b[d].rate && (a[d].rate === 0 || a[d].bucket === b[d].bucket));

/** A file rule's target, or why it is waiting (its unit is not running, its cgroup not there). */
function resolve(ctx: Context, file: string, rule: FileRule): InPlaceTarget | string {
  try {
    return resolveInPlace(ctx, rule.target);
  } catch (err) {
    if (!(err instanceof LimiterError)) throw err;
    if (err.code === 'no-unit-cgroup') return `unit ${'unit' in rule.target ? rule.target.unit : ''} is not running`;
    if (err.code === 'no-such-cgroup')
      return `cgroup ${'cgroup' in rule.target ? rule.target.cgroup : ''} does not exist`;
    throw usageError('bad-rules-file', `${file}:${rule.line}: rule ${rule.name}: ${err.message}`, { hint: err.hint });
  }
}

/** What applying rules would change, given the state and the kernel's limits by cgroup id. */
export function plan(
  ctx: Context,
  rules: FileRule[],
  state: State,
  limitsOf: (cgroupId: number) => Limits | null,
  options: ApplyOptions,
): { changes: Change[]; unchanged: number; targets: Map<string, InPlaceTarget> } {
  const changes: Change[] = [];
  const targets = new Map<string, InPlaceTarget>();
  let unchanged = 0;
  const wanted = rules.filter(
    (r) => options.unit === undefined || ('unit' in r.target && r.target.unit === options.unit),
  );
  for (const rule of wanted) {
    const found = resolve(ctx, options.file, rule);
    if (typeof found === 'string') {
      changes.push({ kind: 'waiting', name: rule.name, why: found });
      continue;
    }
    targets.set(rule.name, found);
    const record = state.rules[rule.name];
    const taken = Object.entries(state.rules).find(
      ([name, r]) =>
        r.source !== 'file' && (name === rule.name || (r.target.kind !== 'pid' && r.cgroupId === found.cgroupId)),
    );
    if (taken) {
      throw operationFailed(
        'made-by-hand',
        `${options.file}:${rule.line}: rule ${rule.name}: rule ${taken[0]} made with 'limiter set' limits ${taken[0] === rule.name ? 'under that name' : 'that cgroup'}`,
        {
          hint: `'limiter unset' it, or rename the rule in ${options.file}; apply never touches rules made by hand`,
        },
      );
    }
    const before = record && record.cgroupId === found.cgroupId ? limitsOf(record.cgroupId) : null;
    if (!before) changes.push({ kind: 'create', name: rule.name, target: found.target, limits: rule.limits });
    else if (!sameLimits(before, rule.limits) || JSON.stringify(record.target) !== JSON.stringify(found.target)) {
      changes.push({ kind: 'change', name: rule.name, target: found.target, before, limits: rule.limits });
    } else unchanged += 1;
  }
  if (options.unit === undefined) {
    const names = new Set(rules.map((r) => r.name));
    for (const [name, record] of Object.entries(state.rules)) {
      if (record.source === 'file' && !names.has(name)) changes.push({ kind: 'remove', name, target: record.target });
    }
  }
  return { changes, unchanged, targets };
}

function execute(t: Transaction, change: Change, target: InPlaceTarget | undefined): void {
  switch (change.kind) {
    case 'create':
      if (t.state.rules[change.name]) dropRecord(t, change.name); // its unit restarted: a new cgroup
      createRule(t, change.name, target!.target, change.limits, 'file');
      break;
    case 'change':
      t.state.rules[change.name].target = target!.target;
      changeLimits(t, change.name, change.limits);
      break;
    case 'remove':
      dropRecord(t, change.name);
      break;
    case 'waiting':
      break;
  }
}

export interface ApplyResult {
  changes: Change[];
  unchanged: number;
}

/** Applies the rules; with dryRun, only says what it would do. */
export async function apply(ctx: Context, rules: FileRule[], options: ApplyOptions): Promise<ApplyResult> {
  if (options.dryRun) {
    const state = loadState(ctx.instance.stateFile);
    const maps = ctx.bpffsMounted ? openMaps(ctx.instance) : null;
    try {
      const kernel = maps ? kernelRules(maps) : new Map<number, KernelRule>();
      const { changes, unchanged } = plan(ctx, rules, state, (id) => kernel.get(id)?.value.limits ?? null, options);
      return { changes, unchanged };
    } finally {
      maps?.close();
    }
  }
  const needed =
    rules.length > 0 || Object.values(loadState(ctx.instance.stateFile).rules).some((r) => r.source === 'file');
  const result = needed
    ? await transaction(ctx, { attach: rules.length > 0 }, (t) => {
        const limitsOf = (id: number) => kernelOf(t).get(id)?.value.limits ?? null;
        const { changes, unchanged, targets } = plan(ctx, rules, t.state, limitsOf, options);
        for (const change of changes) execute(t, change, targets.get(change.name));
        return { changes, unchanged };
      })
    : { changes: [], unchanged: 0 };
  if (options.unit === undefined) {
    syncDropIns(
      ctx,
      rules.flatMap((r) => ('unit' in r.target ? [r.target.unit] : [])),
      options.file,
    );
  }
  return result;
}
