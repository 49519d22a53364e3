/** The target options shared by set, unset and list: exactly one of --pid, --cgroup, --unit, --container. */
import { usageError } from '../lib/errors.js';
import { parsePid } from '../lib/kernel/proc.js';
import type { InPlaceSpec } from '../lib/ops/target.js';

export interface TargetOptions {
  pid?: string;
  cgroup?: string;
  unit?: string;
  container?: string;
  tree?: boolean;
}

export type ParsedTarget = { pid: number; tree?: boolean } | InPlaceSpec;

/** The one target given; none is an error when required, and null otherwise. */
export function targetFromOptions(command: string, options: TargetOptions, required: true): ParsedTarget;
export function targetFromOptions(command: string, options: TargetOptions, required: false): ParsedTarget | null;
export function targetFromOptions(command: string, options: TargetOptions, required: boolean): ParsedTarget | null {
  const given = (['pid', 'cgroup', 'unit', 'container'] as const).filter((k) => options[k] !== undefined);
  if (given.length > 1 || (required && given.length === 0)) {
    throw usageError(
      'bad-target',
      `${command} needs ${required ? 'exactly' : 'at most'} one of --pid, --cgroup, --unit and --container`,
    );
  }
  if (options.tree && options.pid === undefined) throw usageError('tree-without-pid', '--tree goes with --pid');
  if (options.pid !== undefined) return { pid: parsePid(options.pid), tree: options.tree };
  if (options.cgroup !== undefined) return { cgroup: options.cgroup };
  if (options.unit !== undefined) return { unit: options.unit };
  if (options.container !== undefined) return { container: options.container };
  return null;
}
