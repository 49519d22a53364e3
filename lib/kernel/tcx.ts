/**
 * tcx links for sockets owned by a rule outside its cgroup: the tc programs
 * on every interface of the network namespace their process lives in, both
 * directions.
 */
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import type { Instance } from '../instance.js';
import { operationFailed } from '../errors.js';
import { linkCreate, objGet, objPin } from './bpf.js';
import { interfaces, setNetns } from './libc.js';
import { linkPins, pinPath, TCX_HOOKS, tcxPin, unlinkIfPresent } from './pins.js';

/**
 * Attaches the tc programs to every interface of a network namespace (given
 * as /proc/<pid>/ns/net), each through a pinned link. Returns the pins it
 * created.
 */
export function attachTcx(instance: Instance, netnsPath: string): string[] {
  const netnsInode = statSync(netnsPath).ino;
  const created: string[] = [];
  const inside = statSync('/proc/thread-self/ns/net').ino === netnsInode;
  const home = inside ? null : openSync('/proc/thread-self/ns/net', 'r');
  const target = inside ? null : openSync(netnsPath, 'r');
  const programs = TCX_HOOKS.map((hook) => {
    const fd = objGet(pinPath(instance, hook.program));
    if (fd === null) throw operationFailed('no-program', `${hook.program} is not pinned in ${instance.bpffsDir}`);
    return { hook, fd };
  });
  try {
    if (target !== null) setNetns(target);
    for (const { index } of interfaces()) {
      for (const { hook, fd } of programs) {
        const pin = tcxPin(netnsInode, index, hook);
        if (existsSync(pinPath(instance, pin))) continue;
        const link = linkCreate(fd, index, hook.attachType);
        try {
          objPin(link, pinPath(instance, pin));
          created.push(pin);
        } finally {
          closeSync(link);
        }
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
    programs.forEach(({ fd }) => closeSync(fd));
  }
}

/** Detaches every tcx link of the instance. Idempotent. */
export function detachTcx(instance: Instance): void {
  for (const { pin } of linkPins(instance).filter((l) => l.kind === 'tcx')) unlinkIfPresent(pinPath(instance, pin));
}
