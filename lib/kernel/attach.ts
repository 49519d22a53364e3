/**
 * The instance's programs and maps: loaded and pinned once, repaired when a
 * pin is lost, replaced atomically in every link by reload, and removed by
 * purge. A failed step undoes the steps before it.
 */
import { closeSync, existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Instance } from '../instance.js';
import { errnoCode, LimiterError, operationFailed } from '../errors.js';
import { log } from '../log.js';
import { rollBack } from '../undo.js';
import { MAPS, PROGRAMS } from './abi.js';
import { fdById, linkUpdate, objGet, objPin } from './bpf.js';
import { createCgroup } from './cgroup.js';
import { linkInfo, mapInfo, programMapIds } from './info.js';
import { loadObject } from './object.js';
import { linkPins, pinPath, unlinkIfPresent } from './pins.js';

/** The maps and programs of the instance that are not pinned. */
export function missingPins(instance: Instance): string[] {
  return [...MAPS, ...PROGRAMS].filter((pin) => !existsSync(pinPath(instance, pin)));
}

/** Whether the instance has its maps and programs (it has been set up, and not purged). */
export function isSetUp(instance: Instance): boolean {
  return existsSync(instance.bpffsDir) && missingPins(instance).length === 0;
}

export function requireSetUp(instance: Instance): void {
  if (!isSetUp(instance)) {
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
 * Makes the instance whole: loads the object and pins its maps and programs,
 * or repairs whatever pin is missing. Returns what it did, or null when
 * nothing was missing.
 */
export function ensureInstance(instance: Instance, cgroupMount: string, objectPath: string): Repair | null {
  if (isSetUp(instance)) {
    createCgroup(instance.cgroupDir);
    return null;
  }
  const lost = MAPS.filter((name) => !existsSync(pinPath(instance, name)));
  const recoveredMaps = recoverMapPins(instance, lost);
  install(instance, cgroupMount, objectPath);
  log.debug(`loaded ${objectPath} for instance ${instance.name}`);
  return { recoveredMaps, newMaps: lost.filter((name) => !recoveredMaps.includes(name)) };
}

/** The program a pinned link runs now, as an fd, or null. */
function programOfLink(linkFd: number): number | null {
  return fdById('prog', linkInfo(linkFd).programId);
}

/**
 * A map pin removed by hand does not free the map while an attached program
 * uses it: the kernel still has it, limits, tokens and counters included.
 * Pins such maps again, found through the program of a pinned link.
 */
function recoverMapPins(instance: Instance, lost: readonly string[]): string[] {
  const link = lost.length > 0 ? linkPins(instance)[0] : undefined;
  const linkFd = link ? objGet(pinPath(instance, link.pin)) : null;
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

/**
 * Loads objectPath (reusing the pinned maps, pinning any that are missing),
 * gives every pinned link the new program atomically, and pins the programs.
 * On failure it undoes what it did: links get their old program back, and
 * what it created goes.
 */
function install(instance: Instance, cgroupMount: string, objectPath: string): { links: number } {
  // The instance's own cgroup is a direct child of the mount: never the root or a foreign cgroup.
  if (dirname(instance.cgroupDir) !== cgroupMount) {
    throw new Error(`refusing an instance cgroup outside the cgroup2 root: ${instance.cgroupDir}`);
  }
  const undo: Array<() => void> = [];
  try {
    if (createCgroup(instance.cgroupDir)) undo.push(() => rmdirSync(instance.cgroupDir));
    if (!existsSync(instance.bpffsDir)) {
      mkdirSync(instance.bpffsDir, { mode: 0o700 });
      undo.push(() => rmdirSync(instance.bpffsDir));
    }
    for (const name of MAPS) {
      if (!existsSync(pinPath(instance, name))) undo.push(() => unlinkIfPresent(pinPath(instance, name)));
    }
    const { object, programFds } = loadObject(instance, objectPath);
    try {
      const links = linkPins(instance);
      for (const { pin, program } of links) {
        const linkFd = objGet(pinPath(instance, pin));
        if (linkFd === null) continue;
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
      : operationFailed('attach-failed', `cannot load the BPF programs: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Replaces the program in every pinned link with the one from objectPath,
 * keeping the maps (limits, tokens and counters carry on). The object is
 * checked and loaded before anything is touched; if one link cannot be
 * updated, the links already updated get their old program back.
 */
export function reloadPrograms(instance: Instance, cgroupMount: string, objectPath: string): { links: number } {
  requireSetUp(instance);
  return install(instance, cgroupMount, objectPath);
}

/** Unpins the links (detaching the programs), the programs and the maps, and removes the bpffs directory. Idempotent. */
export function unpinAll(instance: Instance): void {
  for (const { pin } of linkPins(instance)) unlinkIfPresent(pinPath(instance, pin));
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
