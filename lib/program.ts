/**
 * The kernel side of an instance: the pinned maps, the BPF program and the
 * pinned link that attaches it to the instance's cgroup.
 */
import { closeSync, existsSync, mkdirSync, openSync, rmdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MAP_RULES, MAP_STATE, PIN, PROG_EGRESS } from './abi.js';
import { createCgroup, removeCgroup } from './cgroup.js';
import { errnoCode, LimiterError, operationFailed } from './errors.js';
import type { Instance } from './instance.js';
import { BpfObject, fdById, objGet, objInfo, queryCgroupPrograms, AttachType } from './libbpf.js';
import { log } from './log.js';

export interface MapFds {
  rules: number;
  state: number;
  close(): void;
}

export const pinPath = (instance: Instance, pin: string) => join(instance.bpffsDir, pin);

const MAP_PINS: Record<string, string> = { [MAP_RULES]: PIN.rules, [MAP_STATE]: PIN.state };

/** The pinned maps, or null when the instance has none. */
export function openMaps(instance: Instance): MapFds | null {
  const rules = objGet(pinPath(instance, PIN.rules));
  if (rules === null) return null;
  const state = objGet(pinPath(instance, PIN.state));
  if (state === null) {
    closeSync(rules);
    return null;
  }
  return { rules, state, close: () => [rules, state].forEach((fd) => closeSync(fd)) };
}

export function isAttached(instance: Instance): boolean {
  return existsSync(pinPath(instance, PIN.egressLink));
}

/**
 * Opens and loads an object, reusing the instance's pinned maps (or pinning new
 * ones). Refuses objects that lack the program or maps this version expects.
 */
function loadObject(instance: Instance, objectPath: string): { object: BpfObject; program: bigint } {
  let object: BpfObject;
  try {
    object = BpfObject.open(objectPath);
  } catch (err) {
    throw operationFailed('bad-object', `${objectPath} is not a usable BPF object: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    const program = object.findProgram(PROG_EGRESS);
    const missing = [PROG_EGRESS, ...Object.keys(MAP_PINS)].filter((name) =>
      name === PROG_EGRESS ? !program : !object.findMap(name),
    );
    if (missing.length > 0 || !program) {
      throw operationFailed('bad-object', `${objectPath} lacks ${missing.join(', ')}`, {
        hint: 'use the limiter.bpf.o built from this version of limiter',
      });
    }
    for (const [mapName, pin] of Object.entries(MAP_PINS)) {
      object.setMapPinPath(object.findMap(mapName)!, pinPath(instance, pin));
    }
    try {
      object.load();
    } catch (err) {
      throw operationFailed('load-failed', `cannot load the BPF program from ${objectPath}: ${(err as Error).message}`, {
        cause: err,
        hint: 'run with -v to see the verifier log',
      });
    }
    return { object, program };
  } catch (err) {
    object.close();
    throw err;
  }
}

/**
 * Loads the program and attaches it to the instance cgroup through a pinned
 * link, unless that is done already. On failure, removes what it created.
 */
export function ensureAttached(instance: Instance, cgroupMount: string, objectPath: string): void {
  if (isAttached(instance)) return;
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
    const pinnedBefore = Object.values(MAP_PINS).filter((pin) => existsSync(pinPath(instance, pin)));
    for (const pin of Object.values(MAP_PINS)) {
      if (!pinnedBefore.includes(pin)) undo.push(() => unlinkIfPresent(pinPath(instance, pin)));
    }
    const { object, program } = loadObject(instance, objectPath);
    try {
      const cgroupFd = openSync(instance.cgroupDir, 'r');
      try {
        const link = object.attachCgroup(program, cgroupFd);
        try {
          link.pin(pinPath(instance, PIN.egressLink));
        } finally {
          link.close();
        }
      } finally {
        closeSync(cgroupFd);
      }
    } finally {
      object.close();
    }
    log.debug(`attached ${PROG_EGRESS} to ${instance.cgroupDir}`);
  } catch (err) {
    for (const step of undo.reverse()) {
      try {
        step();
      } catch (undoErr) {
        log.warn(`could not undo a step: ${(undoErr as Error).message}`);
      }
    }
    throw err instanceof LimiterError
      ? err
      : operationFailed('attach-failed', `cannot attach the BPF program: ${(err as Error).message}`, { cause: err });
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/** Unpins the link (detaching the program) and the maps, and removes the bpffs directory. Idempotent. */
export function unpinAll(instance: Instance): void {
  unlinkIfPresent(pinPath(instance, PIN.egressLink));
  for (const pin of Object.values(MAP_PINS)) unlinkIfPresent(pinPath(instance, pin));
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

export interface ProgramView {
  id: number;
  name: string;
  runCount: number;
  runTimeNs: number;
}
export interface LinkView {
  id: number;
  programId: number;
  cgroupId: number;
  pinned: string;
}
export interface MapView {
  id: number;
  name: string;
  maxEntries: number;
  pinned: string;
}
export interface KernelView {
  link: LinkView | null;
  /** programs attached to the instance cgroup, by whatever means */
  programs: ProgramView[];
  maps: MapView[];
}

const cString = (buf: Buffer, offset: number, length: number) =>
  buf.toString('utf8', offset, offset + length).replace(/\0.*$/s, '');

function programView(id: number): ProgramView | null {
  const fd = fdById('prog', id);
  if (fd === null) return null;
  try {
    // struct bpf_prog_info: id @4, name[16] @64, run_time_ns @192, run_cnt @200
    const info = Buffer.alloc(224);
    objInfo(fd, info);
    return {
      id: info.readUInt32LE(4),
      name: cString(info, 64, 16),
      runTimeNs: Number(info.readBigUInt64LE(192)),
      runCount: Number(info.readBigUInt64LE(200)),
    };
  } finally {
    closeSync(fd);
  }
}

function withPinned<T>(path: string, read: (fd: number) => T): T | null {
  const fd = objGet(path);
  if (fd === null) return null;
  try {
    return read(fd);
  } finally {
    closeSync(fd);
  }
}

/** What the kernel holds for the instance: pinned link and maps, attached programs. */
export function inspectKernel(instance: Instance): KernelView {
  const linkPin = pinPath(instance, PIN.egressLink);
  const link = withPinned(linkPin, (fd) => {
    // struct bpf_link_info: id @4, prog_id @8, cgroup.cgroup_id @16
    const info = Buffer.alloc(32);
    objInfo(fd, info);
    return {
      id: info.readUInt32LE(4),
      programId: info.readUInt32LE(8),
      cgroupId: Number(info.readBigUInt64LE(16)),
      pinned: linkPin,
    };
  });
  const maps: MapView[] = [];
  for (const pin of Object.values(MAP_PINS)) {
    const view = withPinned(pinPath(instance, pin), (fd) => {
      // struct bpf_map_info: id @4, max_entries @16, name[16] @24
      const info = Buffer.alloc(40);
      objInfo(fd, info);
      return {
        id: info.readUInt32LE(4),
        name: cString(info, 24, 16),
        maxEntries: info.readUInt32LE(16),
        pinned: pinPath(instance, pin),
      };
    });
    if (view) maps.push(view);
  }
  const programs: ProgramView[] = [];
  if (existsSync(instance.cgroupDir)) {
    const cgroupFd = openSync(instance.cgroupDir, 'r');
    try {
      for (const id of queryCgroupPrograms(cgroupFd, AttachType.cgroupInetEgress)) {
        const view = programView(id);
        if (view) programs.push(view);
      }
    } finally {
      closeSync(cgroupFd);
    }
  }
  return { link, programs, maps };
}
