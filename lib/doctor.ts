/**
 * `limiter doctor`: whether this machine can run limiter, and whether the
 * instance's state matches the kernel. Reads only; changes nothing.
 */
import { existsSync, openSync, closeSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { MAPS, PROGRAMS } from './abi.js';
import { childCgroups, cgroupId, findCgroup2Mount, isMounted, readMounts } from './cgroup.js';
import { BPFFS_ROOT, bpfObjectPath, instanceName, instancePaths, type Instance } from './instance.js';
import { AttachType, libbpfVersion, probeProgramType, ProgType, queryCgroupPrograms } from './libbpf.js';
import { hasPrivileges } from './preflight.js';
import { isAttached, objectProblem, pinPath } from './program.js';
import { readProcess } from './proc.js';
import { loadState } from './state.js';

export type Severity = 'ok' | 'warning' | 'problem' | 'fatal';

export interface Check {
  name: string;
  severity: Severity;
  detail: string;
  hint?: string;
}

const MIN_KERNEL: [number, number] = [5, 12]; // cgroup bpf links (5.7), BPF atomics (5.12)
const TCX_KERNEL: [number, number] = [6, 6];

function kernelAtLeast(version: string, [major, minor]: [number, number]): boolean {
  const [a = 0, b = 0] = version.split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

function check(name: string, run: () => Omit<Check, 'name'>): Check {
  try {
    return { name, ...run() };
  } catch (err) {
    return { name, severity: 'problem', detail: (err as Error).message };
  }
}

export function diagnose(env: NodeJS.ProcessEnv = process.env): Check[] {
  const checks: Check[] = [];
  const privileged = hasPrivileges();
  const kernel = release();
  checks.push(
    check('kernel', () =>
      !kernelAtLeast(kernel, MIN_KERNEL)
        ? { severity: 'fatal', detail: `${kernel}: limiter needs ${MIN_KERNEL.join('.')} or later` }
        : kernelAtLeast(kernel, TCX_KERNEL)
          ? { severity: 'ok', detail: kernel }
          : { severity: 'warning', detail: `${kernel}: connections opened before 'set' stay unlimited (needs tcx, ${TCX_KERNEL.join('.')})` },
    ),
    check('privileges', () =>
      privileged
        ? { severity: 'ok', detail: 'root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)' }
        : { severity: 'fatal', detail: 'not root: limiter needs CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_BPF', hint: 'run it with sudo' },
    ),
    check('libbpf', () => {
      const version = libbpfVersion();
      return Number(version.replace(/^v/, '').split('.')[0]) >= 1
        ? { severity: 'ok', detail: version }
        : { severity: 'fatal', detail: `${version}: limiter needs libbpf 1.0 or later` };
    }),
  );
  if (privileged) {
    for (const [label, type] of [
      ['cgroup_skb programs', ProgType.cgroupSkb],
      ['tc programs', ProgType.schedCls],
    ] as const) {
      checks.push(
        check(label, () => {
          const result = probeProgramType(type);
          return result === 1
            ? { severity: 'ok', detail: 'the kernel loads them (bpf syscall works)' }
            : { severity: 'fatal', detail: `the kernel refuses them (${result})`, hint: 'a kernel with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF is needed' };
        }),
      );
    }
  }
  const mounts = readMounts();
  let cgroupMount: string | null = null;
  checks.push(
    check('cgroup v2', () => {
      cgroupMount = findCgroup2Mount(mounts);
      return { severity: 'ok', detail: `mounted at ${cgroupMount}` };
    }),
  );
  if (checks.at(-1)!.severity !== 'ok') checks.at(-1)!.severity = 'fatal';
  checks.push(
    check('bpffs', () =>
      isMounted(BPFFS_ROOT, 'bpf', mounts)
        ? { severity: 'ok', detail: `mounted at ${BPFFS_ROOT}` }
        : { severity: 'warning', detail: `not mounted at ${BPFFS_ROOT}`, hint: "'limiter set' mounts it" },
    ),
    check('BTF', () =>
      existsSync('/sys/kernel/btf/vmlinux')
        ? { severity: 'ok', detail: '/sys/kernel/btf/vmlinux' }
        : { severity: 'warning', detail: 'no /sys/kernel/btf/vmlinux (not needed by limiter; bpftool shows less)' },
    ),
    check('BPF object', () => {
      const path = bpfObjectPath(env);
      if (!existsSync(path)) {
        return { severity: 'fatal', detail: `${path} not found`, hint: "build it with 'make build', or set LIMITER_BPF_OBJECT" };
      }
      const problem = privileged ? objectProblem(path) : null;
      return problem ? { severity: 'fatal', detail: `${path}: ${problem}` } : { severity: 'ok', detail: path };
    }),
  );
  if (privileged && cgroupMount) checks.push(...instanceChecks(instancePaths(instanceName(env), cgroupMount)));
  return checks;
}

/** What is attached and pinned for the instance, and whether the state file agrees with the kernel. */
function instanceChecks(instance: Instance): Check[] {
  const checks: Check[] = [];
  const exists = existsSync(instance.cgroupDir) || existsSync(instance.bpffsDir) || existsSync(instance.stateFile);
  if (!exists) return [{ name: `instance ${instance.name}`, severity: 'ok', detail: 'not set up (no rules yet)' }];
  checks.push(
    check(`instance ${instance.name}: program`, () => {
      const pins = [...PROGRAMS, ...MAPS].filter((p) => !existsSync(pinPath(instance, p)));
      if (!isAttached(instance) || pins.length > 0) {
        return { severity: 'problem', detail: `missing in ${instance.bpffsDir}: ${[...(isAttached(instance) ? [] : ['link_egress']), ...pins].join(', ')}`, hint: "'limiter purge' and set the rules again" };
      }
      const fd = openSync(instance.cgroupDir, 'r');
      try {
        const programs = queryCgroupPrograms(fd, AttachType.cgroupInetEgress);
        return programs.length === 1
          ? { severity: 'ok', detail: `program ${programs[0]} attached to ${instance.cgroupDir}` }
          : { severity: 'problem', detail: `${programs.length} programs attached to ${instance.cgroupDir}, expected 1` };
      } finally {
        closeSync(fd);
      }
    }),
    check(`instance ${instance.name}: state`, () => {
      const state = loadState(instance.stateFile);
      const dirs = childCgroups(instance.cgroupDir);
      const problems: string[] = [];
      for (const [name, record] of Object.entries(state.rules)) {
        if (!dirs.includes(name)) problems.push(`rule ${name} has no cgroup`);
        else if (cgroupId(join(instance.cgroupDir, name)) !== record.cgroupId) problems.push(`rule ${name} has another cgroup id`);
        for (const pid of Object.keys(record.members)) {
          if (readProcess(Number(pid))?.startTime !== record.members[pid]!.startTime) problems.push(`pid ${pid} of rule ${name} has exited`);
        }
      }
      for (const dir of dirs) if (!state.rules[dir]) problems.push(`cgroup ${dir} is not a recorded rule`);
      return problems.length === 0
        ? { severity: 'ok', detail: `${Object.keys(state.rules).length} rule(s), matching the kernel` }
        : { severity: 'problem', detail: problems.join('; '), hint: "'limiter purge' removes everything the instance owns" };
    }),
  );
  return checks;
}
