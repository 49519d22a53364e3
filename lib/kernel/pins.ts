/** Where an instance pins its kernel objects in bpffs, and the cgroup links it makes. */
import { readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Instance } from '../instance.js';
import { errnoCode } from '../errors.js';
import { PIN, PROG_EGRESS, PROG_INGRESS, PROG_SOCKOPS, type ProgramName } from './abi.js';
import { AttachType } from './bpf.js';

export const pinPath = (instance: Instance, pin: string) => join(instance.bpffsDir, pin);

/** The links on the instance cgroup: policing both ways, and TCP pacing for sockets created in rules. */
export const CGROUP_LINKS: ReadonlyArray<{ pin: string; program: ProgramName; attachType: number; hook: string }> = [
  { pin: PIN.egressLink, program: PROG_EGRESS, attachType: AttachType.cgroupInetEgress, hook: 'egress' },
  { pin: PIN.ingressLink, program: PROG_INGRESS, attachType: AttachType.cgroupInetIngress, hook: 'ingress' },
  { pin: PIN.sockopsLink, program: PROG_SOCKOPS, attachType: AttachType.cgroupSockOps, hook: 'sock_ops' },
];

/** The pins of the instance's tcx links (one per interface that adopted sockets use). */
export function tcxPins(instance: Instance): string[] {
  try {
    return readdirSync(instance.bpffsDir).filter((name) => name.startsWith(PIN.tcxLinkPrefix));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

export function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
}
