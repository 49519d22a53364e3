/**
 * tcx links for sockets adopted by cookie: limiter_tc_egress on every
 * interface of the network namespace their process lives in.
 */
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import type { Instance } from '../instance.js';
import { operationFailed } from '../errors.js';
import { PIN, PROG_TC_EGRESS } from './abi.js';
import { AttachType, linkCreate, objGet, objPin } from './bpf.js';
import { interfaces, setNetns } from './libc.js';
import { pinPath, tcxPins, unlinkIfPresent } from './pins.js';

/**
 * Attaches limiter_tc_egress to every interface of a network namespace
 * (given as /proc/<pid>/ns/net), each through a pinned link. Returns the
 * pins it created.
 */
export function attachTcx(instance: Instance, netnsPath: string): string[] {
  const netnsInode = statSync(netnsPath).ino;
  const programFd = objGet(pinPath(instance, PROG_TC_EGRESS));
  if (programFd === null)
    throw operationFailed('no-program', `${PROG_TC_EGRESS} is not pinned in ${instance.bpffsDir}`);
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
