/**
 * The links that attach the rule programs to a rule's cgroup, next to
 * whatever else is attached there (links never replace another program).
 */
import { closeSync, existsSync, openSync } from 'node:fs';
import type { Instance } from '../instance.js';
import { errnoCode, notFound, operationFailed } from '../errors.js';
import { linkCreate, objGet, objPin, SystemCallError } from './bpf.js';
import { pinPath, RULE_HOOKS, rulePin, unlinkIfPresent, type Hook } from './pins.js';

/** Those of hooks that have no pinned link on a rule's cgroup. */
export function missingRuleLinks(instance: Instance, cgroupId: number, hooks: readonly Hook[]): Hook[] {
  return hooks.filter((hook) => !existsSync(pinPath(instance, rulePin(cgroupId, hook))));
}

/**
 * Makes the cgroup at dir (whose id is cgroupId) have exactly the links of
 * hooks: attaches the programs that are missing, each through a pinned link
 * (all or none), and detaches the others.
 */
export function attachRule(instance: Instance, dir: string, cgroupId: number, hooks: readonly Hook[]): void {
  const created: string[] = [];
  let cgroupFd: number;
  try {
    cgroupFd = openSync(dir, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw notFound('no-such-cgroup', `cgroup ${dir} does not exist (any more)`);
    throw err;
  }
  try {
    for (const hook of missingRuleLinks(instance, cgroupId, hooks)) {
      const programFd = objGet(pinPath(instance, hook.program));
      if (programFd === null)
        throw operationFailed('no-program', `${hook.program} is not pinned in ${instance.bpffsDir}`);
      try {
        const link = linkCreate(programFd, cgroupFd, hook.attachType);
        try {
          objPin(link, pinPath(instance, rulePin(cgroupId, hook)));
          created.push(rulePin(cgroupId, hook));
        } finally {
          closeSync(link);
        }
      } finally {
        closeSync(programFd);
      }
    }
  } catch (err) {
    created.forEach((pin) => unlinkIfPresent(pinPath(instance, pin)));
    if (err instanceof SystemCallError && err.errno === 'EPERM') {
      throw operationFailed('attach-refused', `cannot attach to ${dir}: a program attached above it allows no others`, {
        cause: err,
        hint: 'that cgroup is managed by a tool that attaches programs exclusively; limit a cgroup below it',
      });
    }
    throw err;
  } finally {
    closeSync(cgroupFd);
  }
  for (const hook of RULE_HOOKS) if (!hooks.includes(hook)) unlinkIfPresent(pinPath(instance, rulePin(cgroupId, hook)));
}

/** Detaches the rule programs from a cgroup: unpins its links. Idempotent. */
export function detachRule(instance: Instance, cgroupId: number): void {
  for (const hook of RULE_HOOKS) unlinkIfPresent(pinPath(instance, rulePin(cgroupId, hook)));
}
