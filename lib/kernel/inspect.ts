/** What the kernel holds for an instance: its pinned programs, links and maps. */
import { closeSync } from 'node:fs';
import type { Instance } from '../instance.js';
import { MAPS, PROGRAMS } from './abi.js';
import { fdById, objGet } from './bpf.js';
import { linkInfo, mapInfo, programInfo, type ProgramInfo } from './info.js';
import { linkPins, pinPath, type LinkPin } from './pins.js';

export interface ProgramView extends ProgramInfo {
  pinned: string;
}
export interface LinkView {
  id: number;
  programId: number;
  hook: string;
  /** the cgroup id of a rule link, the ifindex of a tcx link */
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
  /** the rule programs on the rules' cgroups, three per rule */
  links: LinkView[];
  /** tc programs for owned sockets, two per interface */
  tcxLinks: LinkView[];
  programs: ProgramView[];
  maps: MapView[];
}

/** A program's name and run statistics, by id; null when it has gone. */
export function programView(id: number): ProgramInfo | null {
  const fd = fdById('prog', id);
  if (fd === null) return null;
  try {
    return programInfo(fd);
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

export function inspectKernel(instance: Instance): KernelView {
  const pinned = <T>(pin: string, read: (fd: number) => T) =>
    withPinned(pinPath(instance, pin), (fd) => ({ ...read(fd), pinned: pinPath(instance, pin) }));
  const linkView = (l: LinkPin) =>
    pinned(l.pin, (fd) => {
      const info = linkInfo(fd);
      return {
        id: info.id,
        programId: info.programId,
        hook: l.hook,
        target: l.kind === 'rule' ? info.cgroupId : info.ifindex,
      };
    });
  const pins = linkPins(instance);
  return {
    links: pins.filter((l) => l.kind === 'rule').flatMap((l) => linkView(l) ?? []),
    tcxLinks: pins.filter((l) => l.kind === 'tcx').flatMap((l) => linkView(l) ?? []),
    programs: PROGRAMS.flatMap((name) => pinned(name, programInfo) ?? []),
    maps: MAPS.flatMap((name) => pinned(name, mapInfo) ?? []),
  };
}
