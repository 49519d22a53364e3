/**
 * What a rule limits in place: a cgroup given by path, the cgroup of a
 * systemd unit (found in the cgroup tree, so that no running systemd is
 * needed), or the cgroup of a container (docker or podman inspect). Never the
 * root cgroup, never one of the instance's own.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { basename, isAbsolute, join, relative } from 'node:path';
import type { Context } from '../context.js';
import { isRuleName } from '../instance.js';
import { errnoCode, notFound, unsupported, usageError } from '../errors.js';
import { cgroupDirOf, cgroupId, cgroupOfPid, findCgroups } from '../kernel/cgroup.js';
import type { RuleTarget } from '../store/state.js';

export type InPlaceSpec = { cgroup: string } | { unit: string } | { container: string };

export interface InPlaceTarget {
  target: Exclude<RuleTarget, { kind: 'pid' }>;
  dir: string;
  cgroupId: number;
  /** the rule name to use when none is given */
  defaultName: string;
}

const UNIT_PATTERN = /^[A-Za-z0-9:_.@\\-]+\.(service|scope|slice|socket|mount|swap)$/;
/** How deep to look for a unit's cgroup: user units sit under user.slice/user-N.slice/user@N.service/app.slice. */
const UNIT_DEPTH = 6;

/** A cgroup path as the kernel writes it ("/system.slice/web.service"), checked and resolved. */
function checkedCgroup(ctx: Context, given: string, real: string): { path: string; dir: string } {
  const within = relative(ctx.cgroupMount, real);
  if (within.startsWith('..') || isAbsolute(within)) {
    throw usageError('outside-cgroup2', `${given} is not in the cgroup v2 tree at ${ctx.cgroupMount}`);
  }
  if (within === '') {
    throw usageError('root-cgroup', `${given} is the root cgroup, which limiter never limits`, {
      hint: 'limit a cgroup below it',
    });
  }
  if (within === ctx.instance.name || within.startsWith(`${ctx.instance.name}/`)) {
    throw usageError('instance-cgroup', `${given} belongs to limiter instance ${ctx.instance.name}`, {
      hint: "its rules are changed with 'limiter set --pid' and 'limiter move'",
    });
  }
  if (!existsSync(join(real, 'cgroup.procs'))) throw usageError('not-a-cgroup', `${given} is not a cgroup`);
  return { path: `/${within}`, dir: real };
}

/** --cgroup: a directory under the cgroup2 mount, or a path relative to it as /proc/<pid>/cgroup shows. */
function resolveCgroupPath(ctx: Context, given: string): { path: string; dir: string } {
  if (given === '') throw usageError('bad-cgroup', 'empty --cgroup');
  // A path under the mount is a directory; any other absolute path is first taken as relative to the mount.
  const relativeFirst = given.startsWith('/') && !given.startsWith(`${ctx.cgroupMount}/`) && given !== ctx.cgroupMount;
  for (const candidate of relativeFirst ? [cgroupDirOf(ctx.cgroupMount, given), given] : [given]) {
    try {
      return checkedCgroup(ctx, given, realpathSync(candidate));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
  throw notFound('no-such-cgroup', `no cgroup at ${given}`, {
    hint: `give a directory under ${ctx.cgroupMount}, or a path as /proc/<pid>/cgroup shows it`,
  });
}

function resolveUnit(ctx: Context, unit: string): { path: string; dir: string } {
  if (!UNIT_PATTERN.test(unit)) {
    throw usageError(
      'bad-unit',
      `invalid unit name '${unit}': expected a name such as web.service, backup.scope or ci.slice`,
    );
  }
  const found = findCgroups(ctx.cgroupMount, unit, UNIT_DEPTH, `/${ctx.instance.name}`);
  if (found.length === 0) {
    throw notFound('no-unit-cgroup', `unit ${unit} has no cgroup under ${ctx.cgroupMount}`, {
      hint: 'is it running? A unit has a cgroup only while it runs',
    });
  }
  if (found.length > 1) {
    throw usageError('ambiguous-unit', `unit ${unit} has ${found.length} cgroups: ${found.join(', ')}`, {
      hint: 'name the one you mean with --cgroup',
    });
  }
  return checkedCgroup(ctx, unit, cgroupDirOf(ctx.cgroupMount, found[0]));
}

/** The main process of a container, from docker or podman (the first whose daemon answers). */
function containerPid(container: string): number {
  const silent: string[] = [];
  for (const engine of ['docker', 'podman']) {
    const result = spawnSync(engine, ['inspect', '--format', '{{.State.Pid}}', container], { encoding: 'utf8' });
    if (result.error) continue; // not installed
    const pid = Number(result.stdout.trim());
    if (result.status === 0 && Number.isInteger(pid) && pid > 0) return pid;
    const reason = result.stderr.trim().split('\n')[0] ?? '';
    if (/cannot connect|daemon/i.test(reason)) {
      silent.push(`${engine}: ${reason}`);
      continue;
    }
    throw notFound('no-such-container', `${engine} knows no running container ${container}`, {
      hint: reason || undefined,
    });
  }
  const why = silent.length > 0 ? silent.join('; ') : 'neither docker nor podman is installed';
  throw unsupported('no-container-engine', `no container engine answers to find container ${container} (${why})`, {
    hint: 'give its cgroup with --cgroup (cat /proc/<its pid>/cgroup)',
  });
}

function resolveContainer(ctx: Context, container: string): { path: string; dir: string } {
  const pid = containerPid(container);
  const path = cgroupOfPid(pid);
  if (path === null) throw notFound('no-such-container', `the process ${pid} of container ${container} has gone`);
  return checkedCgroup(ctx, container, realpathSync(cgroupDirOf(ctx.cgroupMount, path)));
}

/** Resolves a --cgroup, --unit or --container target; refuses what limiter must never limit. */
export function resolveInPlace(ctx: Context, spec: InPlaceSpec): InPlaceTarget {
  let target: InPlaceTarget['target'];
  let dir: string;
  let name: string;
  if ('cgroup' in spec) {
    const found = resolveCgroupPath(ctx, spec.cgroup);
    ({ dir } = found);
    target = { kind: 'cgroup', path: found.path };
    name = basename(found.path);
  } else if ('unit' in spec) {
    const found = resolveUnit(ctx, spec.unit);
    ({ dir } = found);
    target = { kind: 'unit', unit: spec.unit, path: found.path };
    name = spec.unit;
  } else {
    const found = resolveContainer(ctx, spec.container);
    ({ dir } = found);
    target = { kind: 'container', container: spec.container, path: found.path };
    name = spec.container;
  }
  let id: number;
  try {
    id = cgroupId(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw notFound('no-such-cgroup', `cgroup ${dir} is gone`);
    throw err;
  }
  return { target, dir, cgroupId: id, defaultName: isRuleName(name) ? name : '' };
}
