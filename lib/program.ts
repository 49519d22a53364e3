/**
 * The kernel side of an instance: the pinned maps, the BPF program and the
 * pinned link that attaches it to the instance's cgroup.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  decodeRule,
  decodeState,
  emptyRuleBuffer,
  emptyStateBuffer,
  encodeCgroupId,
  encodeSlot,
  LAYOUT,
  MAP_CONFIG,
  MAP_RULES,
  MAP_SOCKETS,
  MAP_STATE,
  MAPS,
  PIN,
  PROG_EGRESS,
  PROG_INGRESS,
  PROG_SOCKOPS,
  PROG_TC_EGRESS,
  PROGRAMS,
  type ProgramName,
  type RuleValue,
  type StateValue,
} from './abi.js';
import { createCgroup, removeCgroup } from './cgroup.js';
import { errnoCode, LimiterError, operationFailed } from './errors.js';
import type { Instance } from './instance.js';
import {
  AttachType,
  BpfObject,
  btfStructLayout,
  fdById,
  interfaces,
  linkCreate,
  linkUpdate,
  mapLookup,
  objGet,
  objInfo,
  objPin,
  queryCgroupPrograms,
  setNetns,
} from './libbpf.js';
import { log } from './log.js';

export interface MapFds {
  rules: number;
  state: number;
  sockets: number;
  config: number;
  close(): void;
}

export const pinPath = (instance: Instance, pin: string) => join(instance.bpffsDir, pin);

/** The pinned maps user space writes, or null when the instance has none. */
export function openMaps(instance: Instance): MapFds | null {
  const fds: number[] = [];
  for (const name of [MAP_RULES, MAP_STATE, MAP_SOCKETS, MAP_CONFIG]) {
    const fd = objGet(pinPath(instance, name));
    if (fd === null) {
      fds.forEach((f) => closeSync(f));
      return null;
    }
    fds.push(fd);
  }
  const [rules, state, sockets, config] = fds as [number, number, number, number];
  return { rules, state, sockets, config, close: () => fds.forEach((fd) => closeSync(fd)) };
}

/** A rule's limits and counters as the kernel holds them: null without a limit, counters null if its slot is unreadable. */
export function readRule(maps: MapFds, cgroupId: number): { value: RuleValue; counters: StateValue | null } | null {
  const ruleBuf = emptyRuleBuffer();
  if (!mapLookup(maps.rules, encodeCgroupId(cgroupId), ruleBuf)) return null;
  const value = decodeRule(ruleBuf);
  const stateBuf = emptyStateBuffer();
  return { value, counters: mapLookup(maps.state, encodeSlot(value.slot), stateBuf) ? decodeState(stateBuf) : null };
}

/** Whether the instance has its program attached (the egress link is pinned). */
export function isAttached(instance: Instance): boolean {
  return existsSync(pinPath(instance, PIN.egressLink));
}

/** Whether every map, program and cgroup link of the instance is pinned. */
export function isComplete(instance: Instance): boolean {
  return [...MAPS, ...PROGRAMS, ...CGROUP_LINKS.map((l) => l.pin)].every((pin) => existsSync(pinPath(instance, pin)));
}

/** Why an object cannot serve this version of limiter, or null when it can. */
export function objectProblem(objectPath: string): string | null {
  let object: BpfObject;
  try {
    object = BpfObject.open(objectPath);
  } catch (err) {
    return `not a BPF object: ${(err as Error).message}`;
  }
  try {
    const missing = [
      ...PROGRAMS.filter((name) => !object.findProgram(name)),
      ...MAPS.filter((name) => !object.findMap(name)),
    ];
    if (missing.length > 0) return `it lacks ${missing.join(', ')}`;
    for (const [struct, layout] of Object.entries(LAYOUT)) {
      const found = btfStructLayout(objectPath, struct);
      if (JSON.stringify(found) !== JSON.stringify(layout)) return `its struct ${struct} differs from this version's`;
    }
    return null;
  } finally {
    object.close();
  }
}

interface Loaded {
  object: BpfObject;
  programFds: Record<ProgramName, number>;
}

/**
 * Checks an object, then loads it reusing the instance's pinned maps (or
 * pinning new ones). Nothing pinned changes unless the load succeeds.
 */
function loadObject(instance: Instance, objectPath: string): Loaded {
  const problem = objectProblem(objectPath);
  if (problem) {
    throw operationFailed('bad-object', `${objectPath} cannot be used: ${problem}`, {
      hint: 'use the limiter.bpf.o built from this version of limiter',
    });
  }
  const object = BpfObject.open(objectPath);
  try {
    for (const name of MAPS) object.setMapPinPath(object.findMap(name)!, pinPath(instance, name));
    try {
      object.load();
    } catch (err) {
      throw operationFailed('load-failed', `cannot load the BPF program from ${objectPath}: ${(err as Error).message}`, {
        cause: err,
        hint: 'run with -v to see the verifier log',
      });
    }
    const programFds = Object.fromEntries(
      PROGRAMS.map((name) => [name, object.programFd(object.findProgram(name)!)]),
    ) as Record<ProgramName, number>;
    return { object, programFds };
  } catch (err) {
    object.close();
    throw err;
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}

/** Runs undo steps newest first, reporting (not throwing) their own failures. */
export function rollBack(undo: Array<() => void>): void {
  for (const step of undo.reverse()) {
    try {
      step();
    } catch (err) {
      log.warn(`could not undo a step: ${(err as Error).message}`);
    }
  }
}

/** The links on the instance cgroup: policing both ways, and TCP pacing for sockets created in rules. */
const CGROUP_LINKS: Array<{ pin: string; program: ProgramName; attachType: number; hook: string }> = [
  { pin: PIN.egressLink, program: PROG_EGRESS, attachType: AttachType.cgroupInetEgress, hook: 'egress' },
  { pin: PIN.ingressLink, program: PROG_INGRESS, attachType: AttachType.cgroupInetIngress, hook: 'ingress' },
  { pin: PIN.sockopsLink, program: PROG_SOCKOPS, attachType: AttachType.cgroupSockOps, hook: 'sock_ops' },
];

/**
 * Makes the instance whole: loads the programs and attaches them to the
 * instance cgroup through pinned links, or repairs whatever pin is missing.
 * Returns whether it had anything to do.
 */
export function ensureAttached(instance: Instance, cgroupMount: string, objectPath: string): boolean {
  if (isComplete(instance)) return false;
  install(instance, cgroupMount, objectPath);
  log.debug(`attached ${PROG_EGRESS} to ${instance.cgroupDir}`);
  return true;
}

/** The program a pinned link runs now, as an fd, or null. */
function programOfLink(linkFd: number): number | null {
  // struct bpf_link_info: prog_id @8
  const info = Buffer.alloc(32);
  objInfo(linkFd, info);
  return fdById('prog', info.readUInt32LE(8));
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

const tcxPins = (instance: Instance) => {
  try {
    return readdirSync(instance.bpffsDir).filter((name) => name.startsWith(PIN.tcxLinkPrefix));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
};

/** The program each pinned link runs: the cgroup links and the tcx links. */
function pinnedLinks(instance: Instance): Array<{ pin: string; program: ProgramName }> {
  return [
    ...CGROUP_LINKS,
    ...tcxPins(instance).map((pin) => ({ pin, program: PROG_TC_EGRESS as ProgramName })),
  ].filter((l) => existsSync(pinPath(instance, l.pin)));
}

/**
 * Attaches limiter_tc_egress with tcx to every interface of a network
 * namespace (given as /proc/<pid>/ns/net), each through a pinned link.
 * Returns the pins it created.
 */
export function attachTcx(instance: Instance, netnsPath: string): string[] {
  const netnsInode = statSync(netnsPath).ino;
  const programFd = objGet(pinPath(instance, PROG_TC_EGRESS));
  if (programFd === null) throw operationFailed('no-program', `${PROG_TC_EGRESS} is not pinned in ${instance.bpffsDir}`);
  const created: string[] = [];
  const inside = statSync('/proc/thread-self/ns/net').ino === netnsInode;
  const home = inside ? null : openSync('/proc/thread-self/ns/net', 'r');
  const target = inside ? null : openSync(netnsPath, 'r');
  try {
    if (target !== null) setNetns(target);
    for (const { index } of interfaces()) {
      const pin = `${PIN.tcxLinkPrefix}${netnsInode}_${index}`;
      if (existsSync(pinPath(instance, pin))) continue;
      const link = linkCreate(programFd, index, AttachType.tcxEgress);
      try {
        objPin(link, pinPath(instance, pin));
        created.push(pin);
      } finally {
        closeSync(link);
      }
    }
    return created;
  } catch (err) {
    created.forEach((pin) => unlinkIfPresent(pinPath(instance, pin)));
    throw err;
  } finally {
    if (home !== null) {
      setNetns(home);
      closeSync(home);
    }
    if (target !== null) closeSync(target);
    closeSync(programFd);
  }
}

/** Detaches every tcx link of the instance. Idempotent. */
export function detachTcx(instance: Instance): void {
  for (const pin of tcxPins(instance)) unlinkIfPresent(pinPath(instance, pin));
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

export function requireAttached(instance: Instance): void {
  if (!isAttached(instance)) {
    throw operationFailed('not-attached', `instance ${instance.name} has no program attached`, {
      hint: "'limiter set' attaches it",
    });
  }
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

export interface ProgramView {
  id: number;
  name: string;
  /** the cgroup hook it is attached to, when it is */
  hook?: string;
  runCount: number;
  runTimeNs: number;
}
export interface LinkView {
  id: number;
  programId: number;
  /** cgroup id for the cgroup link, ifindex for a tcx link */
  target: number;
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
  /** tcx links limiting adopted sockets, one per interface */
  tcxLinks: LinkView[];
  /** programs attached to the instance cgroup, by whatever means */
  programs: ProgramView[];
  maps: MapView[];
}

const cString = (buf: Buffer, offset: number, length: number) =>
  buf.toString('utf8', offset, offset + length).replace(/\0.*$/s, '');

/** A program's id, name and run statistics, from an fd of it. */
export function describeProgram(fd: number): ProgramView {
  // struct bpf_prog_info: id @4, name[16] @64, run_time_ns @192, run_cnt @200
  const info = Buffer.alloc(224);
  objInfo(fd, info);
  return {
    id: info.readUInt32LE(4),
    name: cString(info, 64, 16),
    runTimeNs: Number(info.readBigUInt64LE(192)),
    runCount: Number(info.readBigUInt64LE(200)),
  };
}

/** A program's name and run statistics, by id; null when it has gone. */
export function programView(id: number): ProgramView | null {
  const fd = fdById('prog', id);
  if (fd === null) return null;
  try {
    return describeProgram(fd);
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
  const linkView = (pin: string) =>
    withPinned(pinPath(instance, pin), (fd) => {
      // struct bpf_link_info: id @4, prog_id @8, then cgroup.cgroup_id (u64) or tcx.ifindex (u32) @16
      const info = Buffer.alloc(32);
      objInfo(fd, info);
      return {
        id: info.readUInt32LE(4),
        programId: info.readUInt32LE(8),
        target: pin === PIN.egressLink ? Number(info.readBigUInt64LE(16)) : info.readUInt32LE(16),
        pinned: pinPath(instance, pin),
      };
    });
  const link = linkView(PIN.egressLink);
  const tcxLinks = tcxPins(instance)
    .map(linkView)
    .filter((l): l is LinkView => l !== null);
  const maps: MapView[] = [];
  for (const pin of MAPS) {
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
      for (const { hook, attachType } of CGROUP_LINKS) {
        for (const id of queryCgroupPrograms(cgroupFd, attachType)) {
          const view = programView(id);
          if (view) programs.push({ ...view, hook });
        }
      }
    } finally {
      closeSync(cgroupFd);
    }
  }
  return { link, tcxLinks, programs, maps };
}
