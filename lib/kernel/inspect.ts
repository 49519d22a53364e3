/** What the kernel holds for an instance: its pinned links and maps, and the programs on its cgroup. */
import { closeSync, existsSync, openSync } from 'node:fs';
import type { Instance } from '../instance.js';
import { MAPS, PIN } from './abi.js';
import { fdById, objGet, queryCgroupPrograms } from './bpf.js';
import { linkInfo, mapInfo, programInfo, type ProgramInfo } from './info.js';
import { CGROUP_LINKS, pinPath, tcxPins } from './pins.js';

export interface ProgramView extends ProgramInfo {
  /** the cgroup hook it is attached to, when it is */
  hook?: string;
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

/** A program's name and run statistics, by id; null when it has gone. */
export function programView(id: number): ProgramView | null {
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
  const linkView = (pin: string) =>
    withPinned(pinPath(instance, pin), (fd) => {
      const info = linkInfo(fd);
      return {
        id: info.id,
        programId: info.programId,
        target: pin === PIN.egressLink ? info.cgroupId : info.ifindex,
        pinned: pinPath(instance, pin),
      };
    });
  const maps = MAPS.flatMap((pin) => {
    const view = withPinned(pinPath(instance, pin), (fd) => ({ ...mapInfo(fd), pinned: pinPath(instance, pin) }));
    return view ? [view] : [];
  });
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
  return {
    link: linkView(PIN.egressLink),
    tcxLinks: tcxPins(instance).flatMap((pin) => linkView(pin) ?? []),
    programs,
    maps,
  };
}
