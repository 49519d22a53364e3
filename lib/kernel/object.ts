/** The compiled BPF object: checked against this version's ABI, then loaded with the instance's pinned maps. */
import type { Instance } from '../instance.js';
import { operationFailed } from '../errors.js';
import { LAYOUT, MAPS, PROGRAMS, type ProgramName } from './abi.js';
import { BpfObject, btfStructLayout } from './bpf.js';
import { pinPath } from './pins.js';

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

export interface Loaded {
  object: BpfObject;
  programFds: Record<ProgramName, number>;
}

/**
 * Checks an object, then loads it reusing the instance's pinned maps (or
 * pinning new ones). Nothing pinned changes unless the load succeeds.
 */
export function loadObject(instance: Instance, objectPath: string): Loaded {
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
      throw operationFailed(
        'load-failed',
        `cannot load the BPF program from ${objectPath}: ${(err as Error).message}`,
        {
          cause: err,
          hint: 'run with -v to see the verifier log',
        },
      );
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
