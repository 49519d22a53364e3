/**
 * The instance's programs on its cgroup: attached through pinned links,
 * repaired when a pin is lost, replaced atomically by reload, and removed by
 * purge. A failed step undoes the steps before it.
 */
import { closeSync, existsSync, mkdirSync, openSync, rmdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Instance } from '../instance.js';
import { errnoCode, LimiterError, operationFailed } from '../errors.js';
import { log } from '../log.js';
import { rollBack } from '../undo.js';
import { MAPS, PIN, PROG_TC_EGRESS, PROGRAMS, type ProgramName } from './abi.js';
import { fdById, linkCreate, linkUpdate, objGet, objPin } from './bpf.js';
import { createCgroup, removeCgroup } from './cgroup.js';
import { linkInfo, mapInfo, programMapIds } from './info.js';
import { loadObject } from './object.js';
import { CGROUP_LINKS, pinPath, tcxPins, unlinkIfPresent } from './pins.js';
import { detachTcx } from './tcx.js';

/** Whether the instance has its program attached (the egress link is pinned). */
export function isAttached(instance: Instance): boolean {
  return existsSync(pinPath(instance, PIN.egressLink));
}

/** The maps, programs and cgroup links of the instance that are not pinned. */
export function missingPins(instance: Instance): string[] {
  return [...MAPS, ...PROGRAMS, ...CGROUP_LINKS.map((l) => l.pin)].filter((pin) => !existsSync(pinPath(instance, pin)));
}

export function requireAttached(instance: Instance): void {
  if (!isAttached(instance)) {
    throw operationFailed('not-attached', `instance ${instance.name} has no program attached`, {
      hint: "'limiter set' attaches it",
    });
  }
}

export interface Repair {
  /** maps whose pin was lost but which a pinned link still used: pinned again, contents kept */
  recoveredMaps: string[];
  /** maps that were lost for good: made new, empty */
  newMaps: string[];
}

/**
 * Makes the instance whole: loads the programs and attaches them to the
 * instance cgroup through pinned links, or repairs whatever pin is missing.
 * Returns what it did, or null when nothing was missing.
 */
export function ensureAttached(instance: Instance, cgroupMount: string, objectPath: string): Repair | null {
  if (missingPins(instance).length === 0) return null;
  const lost = MAPS.filter((name) => !existsSync(pinPath(instance, name)));
  const recoveredMaps = recoverMapPins(instance, lost);
  install(instance, cgroupMount, objectPath);
  log.debug(`attached the programs to ${instance.cgroupDir}`);
  return { recoveredMaps, newMaps: lost.filter((name) => !recoveredMaps.includes(name)) };
}

/** The program a pinned link runs now, as an fd, or null. */
function programOfLink(linkFd: number): number | null {
  return fdById('prog', linkInfo(linkFd).programId);
}

/**
 * A map pin removed by hand does not free the map while an attached program
 * uses it: the kernel still has it, limits, tokens and counters included.
 * Pins such maps again, found through the program of any pinned link.
 */
function recoverMapPins(instance: Instance, lost: readonly string[]): string[] {
  if (lost.length === 0) return [];
  const linkPin = [...CGROUP_LINKS.map((l) => l.pin), ...tcxPins(instance)].find((pin) =>
    existsSync(pinPath(instance, pin)),
  );
  const linkFd = linkPin ? objGet(pinPath(instance, linkPin)) : null;
  if (linkFd === null) return [];
  const recovered: string[] = [];
  try {
    const programFd = programOfLink(linkFd);
    if (programFd === null) return [];
    try {
      for (const id of programMapIds(programFd)) {
        const mapFd = fdById('map', id);
        if (mapFd === null) continue;
        try {
          const name = mapInfo(mapFd).name;
          if (lost.includes(name)) {
            objPin(mapFd, pinPath(instance, name));
            recovered.push(name);
          }
        } finally {
          closeSync(mapFd);
        }
      }
    } finally {
      closeSync(programFd);
    }
  } finally {
    closeSync(linkFd);
  }
  return recovered;
}

/** The program each pinned link runs: the cgroup links and the tcx links. */
function pinnedLinks(instance: Instance): Array<{ pin: string; program: ProgramName }> {
  return [
    ...CGROUP_LINKS,
    ...tcxPins(instance).map((pin): { pin: string; program: ProgramName } => ({ pin, program: PROG_TC_EGRESS })),
  ].filter((l) => existsSync(pinPath(instance, l.pin)));
}

/**
 * Loads objectPath (reusing the pinned maps, pinning any that are missing),
 * gives every pinned link the new program atomically, creates the cgroup
 * links that are missing, and pins the programs. On failure it undoes what
 * it did: links get their old program back, and what it created goes.
 */
function install(instance: Instance, cgroupMount: string, objectPath: string): { links: number } {
  // Only the instance's own cgroup, a direct child of the mount: never the root or a foreign cgroup.
  if (dirname(instance.cgroupDir) !== cgroupMount) {
    throw new Error(`refusing to attach outside the instance cgroup: ${instance.cgroupDir}`);
  }
  const undo: Array<() => void> = [];
  try {
    if (createCgroup(instance.cgroupDir)) undo.push(() => removeCgroup(instance.cgroupDir));
    if (!existsSync(instance.bpffsDir)) {
      mkdirSync(instance.bpffsDir, { mode: 0o700 });
      undo.push(() => rmdirSync(instance.bpffsDir));
    }
    for (const name of MAPS) {
      if (!existsSync(pinPath(instance, name))) undo.push(() => unlinkIfPresent(pinPath(instance, name)));
    }
    const { object, programFds } = loadObject(instance, objectPath);
    try {
      const links = pinnedLinks(instance);
      for (const { pin, program } of links) {
        const linkFd = objGet(pinPath(instance, pin))!;
        try {
          const old = programOfLink(linkFd);
          linkUpdate(linkFd, programFds[program]);
          if (old !== null) {
            undo.push(() => {
              const fd = objGet(pinPath(instance, pin));
              if (fd !== null) {
                linkUpdate(fd, old);
                closeSync(fd);
              }
              closeSync(old);
            });
          }
        } finally {
          closeSync(linkFd);
        }
      }
      const cgroupFd = openSync(instance.cgroupDir, 'r');
      try {
        for (const { pin, program, attachType } of CGROUP_LINKS) {
          if (existsSync(pinPath(instance, pin))) continue;
          const link = linkCreate(programFds[program], cgroupFd, attachType);
          try {
            objPin(link, pinPath(instance, pin));
            undo.push(() => unlinkIfPresent(pinPath(instance, pin)));
          } finally {
            closeSync(link);
          }
        }
      } finally {
        closeSync(cgroupFd);
      }
      for (const name of PROGRAMS) {
        unlinkIfPresent(pinPath(instance, name));
        objPin(programFds[name], pinPath(instance, name));
      }
      return { links: links.length };
    } finally {
      object.close();
    }
  } catch (err) {
    rollBack(undo);
    throw err instanceof LimiterError
      ? err
      : operationFailed('attach-failed', `cannot attach the BPF program: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Replaces the program in every pinned link with the one from objectPath,
 * keeping the maps (limits, tokens and counters carry on). The object is
 * checked and loaded before anything is touched; if one link cannot be
 * updated, the links already updated get their old program back.
 */
export function reloadPrograms(instance: Instance, cgroupMount: string, objectPath: string): { links: number } {
  requireAttached(instance);
  return install(instance, cgroupMount, objectPath);
}

/** Unpins the links (detaching the programs), the programs and the maps, and removes the bpffs directory. Idempotent. */
export function unpinAll(instance: Instance): void {
  for (const { pin } of CGROUP_LINKS) unlinkIfPresent(pinPath(instance, pin));
  detachTcx(instance);
  for (const name of [...PROGRAMS, ...MAPS]) unlinkIfPresent(pinPath(instance, name));
  try {
    rmdirSync(instance.bpffsDir);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') {
      throw operationFailed('unpin-failed', `cannot remove ${instance.bpffsDir}: ${(err as Error).message}`, {
        cause: err,
        hint: 'something else is pinned there; look with: ls ' + instance.bpffsDir,
      });
    }
  }
}
