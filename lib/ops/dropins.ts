/**
 * How a unit's limit survives a restart (a new cgroup each time): a drop-in
 * for each service the rules file names, whose ExecStartPost= applies that
 * unit's rule again once its new cgroup exists (doc/design.md, "Limits that
 * last"). `apply` writes and removes them; `purge` removes them all.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Context } from '../context.js';
import { errnoCode } from '../errors.js';
import { packageRoot } from '../instance.js';
import { log } from '../log.js';

const INSTALLED_COMMAND = '/usr/bin/limiter';

/** Where unit drop-ins go: /etc/systemd/system, or LIMITER_SYSTEMD_DIR (tests). */
export const systemdDir = (env: NodeJS.ProcessEnv = process.env) => env.LIMITER_SYSTEMD_DIR || '/etc/systemd/system';

const fileName = (ctx: Context) => `limiter-${ctx.instance.name}.conf`;
const pathOf = (dir: string, unit: string, ctx: Context) => join(dir, `${unit}.d`, fileName(ctx));

/** The command a drop-in runs: the installed limiter, or this checkout's. */
function limiterCommand(): string {
  const root = packageRoot();
  return root === '/usr/lib/speed-limiter' ? INSTALLED_COMMAND : join(root, 'bin', 'limiter');
}

export function dropInText(ctx: Context, unit: string, rulesFile: string): string {
  const instance = ctx.instance.name === 'speed_limiter' ? '' : `/usr/bin/env LIMITER_INSTANCE=${ctx.instance.name} `;
  return [
    `# Written by 'limiter apply' (instance ${ctx.instance.name}) from ${rulesFile}; removed with the rule.`,
    '# The unit gets a new cgroup each time it starts: this applies its limit to it again.',
    '[Service]',
    `ExecStartPost=-${instance}${limiterCommand()} apply -f ${rulesFile} --unit ${unit}`,
    '',
  ].join('\n');
}

/** The services that have a drop-in of this instance. */
export function dropInUnits(ctx: Context, dir = systemdDir()): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => e.endsWith('.d') && existsSync(join(dir, e, fileName(ctx))))
    .map((e) => e.slice(0, -2))
    .sort();
}

/**
 * Makes the drop-ins exactly those of units (services only: other units are
 * not restarted with ExecStartPost). Returns whether any file changed.
 */
export function syncDropIns(ctx: Context, units: string[], rulesFile: string, dir = systemdDir()): boolean {
  let changed = false;
  const wanted = new Set(units.filter((u) => u.endsWith('.service')));
  for (const unit of units.filter((u) => !u.endsWith('.service'))) {
    log.warn(`unit ${unit} is not a service: its limit comes back after a restart only with the next 'limiter apply'`);
  }
  for (const unit of wanted) {
    const path = pathOf(dir, unit, ctx);
    const text = dropInText(ctx, unit, rulesFile);
    if (existsSync(path) && readFileSync(path, 'utf8') === text) continue;
    mkdirSync(join(dir, `${unit}.d`), { recursive: true });
    writeFileSync(path, text, { mode: 0o644 });
    changed = true;
  }
  for (const unit of dropInUnits(ctx, dir)) {
    if (wanted.has(unit)) continue;
    removeDropIn(ctx, unit, dir);
    changed = true;
  }
  if (changed) reloadSystemd();
  return changed;
}

function removeDropIn(ctx: Context, unit: string, dir: string): void {
  unlinkSync(pathOf(dir, unit, ctx));
  try {
    rmdirSync(join(dir, `${unit}.d`));
  } catch {
    // the directory holds other drop-ins
  }
}

/** Removes every drop-in of the instance (purge). */
export function removeDropIns(ctx: Context, dir = systemdDir()): void {
  const units = dropInUnits(ctx, dir);
  for (const unit of units) removeDropIn(ctx, unit, dir);
  if (units.length > 0) reloadSystemd();
}

/** systemd reads drop-ins on daemon-reload; without a running systemd there is nothing to tell. */
function reloadSystemd(): void {
  if (!existsSync('/run/systemd/system')) return;
  const result = spawnSync('systemctl', ['daemon-reload'], { encoding: 'utf8' });
  if (result.status !== 0) log.warn(`systemctl daemon-reload failed: ${result.stderr.trim()}`);
}
