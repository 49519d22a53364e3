/**
 * `limiter doctor`: whether this machine can run limiter, and what the one
 * comparison of state and kernel (store/findings.ts) finds in the instance.
 * Reads only; changes nothing.
 */
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { lockTimeoutMs, hasPrivileges, type Context } from '../context.js';
import { BPFFS_ROOT, bpfObjectPath, instanceName, instancePaths } from '../instance.js';
import { libbpfVersion, probeProgramType, ProgType } from '../kernel/bpf.js';
import { findCgroup2Mount, isMounted, readMounts } from '../kernel/cgroup.js';
import { openMaps } from '../kernel/maps.js';
import { objectProblem } from '../kernel/object.js';
import { linkPins } from '../kernel/pins.js';
import { describeFinding, instanceFindings, ruleFindings, type Finding } from '../store/findings.js';
import { loadState } from '../store/state.js';

export type Severity = 'ok' | 'info' | 'warning' | 'problem' | 'fatal';

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
          : {
              severity: 'warning',
              detail: `${kernel}: connections opened before 'set' stay unlimited (needs tcx, ${TCX_KERNEL.join('.')})`,
            },
    ),
    check('privileges', () =>
      privileged
        ? { severity: 'ok', detail: 'root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)' }
        : {
            severity: 'fatal',
            detail: 'not root: limiter needs CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_BPF',
            hint: 'run it with sudo',
          },
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
            : {
                severity: 'fatal',
                detail: `the kernel refuses them (${result})`,
                hint: 'a kernel with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF is needed',
              };
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
  const bpffsMounted = isMounted(BPFFS_ROOT, 'bpf', mounts);
  checks.push(
    check('bpffs', () =>
      bpffsMounted
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
        return {
          severity: 'fatal',
          detail: `${path} not found`,
          hint: "build it with 'make build', or set LIMITER_BPF_OBJECT",
        };
      }
      const problem = privileged ? objectProblem(path) : null;
      return problem ? { severity: 'fatal', detail: `${path}: ${problem}` } : { severity: 'ok', detail: path };
    }),
  );
  if (privileged && cgroupMount) {
    const ctx: Context = {
      instance: instancePaths(instanceName(env), cgroupMount),
      cgroupMount,
      objectPath: bpfObjectPath(env),
      lockTimeoutMs: lockTimeoutMs(env),
      bpffsMounted,
    };
    checks.push(...instanceChecks(ctx));
  }
  return checks;
}

const severityOf = (findings: Finding[], instance: string): Severity =>
  findings.some((f) => describeFinding(f, instance).severity === 'problem')
    ? 'problem'
    : findings.length > 0
      ? 'info'
      : 'ok';

/** What is attached and pinned for the instance, and what the comparison of state and kernel finds. */
function instanceChecks(ctx: Context): Check[] {
  const { instance } = ctx;
  const exists = existsSync(instance.cgroupDir) || existsSync(instance.bpffsDir) || existsSync(instance.stateFile);
  if (!exists) return [{ name: `instance ${instance.name}`, severity: 'ok', detail: 'not set up (no rules yet)' }];
  const words = (findings: Finding[]) => findings.map((f) => describeFinding(f, instance.name).text).join('; ');
  return [
    check(`instance ${instance.name}: programs`, () => {
      const pins = instanceFindings(ctx);
      if (pins.length > 0) {
        return {
          severity: 'problem',
          detail: words(pins),
          hint: "the next set, move or unset repairs it; 'limiter purge' starts afresh",
        };
      }
      const links = linkPins(instance);
      const rules = links.filter((l) => l.kind === 'rule').length;
      const tcx = links.length - rules;
      return {
        severity: 'ok',
        detail: `loaded; ${rules} link(s) on rule cgroups, ${tcx} tcx link(s) for owned sockets`,
      };
    }),
    check(`instance ${instance.name}: state`, () => {
      const state = loadState(instance.stateFile);
      const maps = openMaps(instance);
      if (!maps) return { severity: 'problem', detail: 'the maps are not pinned: no rule is enforced' };
      try {
        const findings = ruleFindings(ctx, state, maps);
        const severity = severityOf(findings, instance.name);
        return severity === 'ok'
          ? { severity, detail: `${Object.keys(state.rules).length} rule(s), matching the kernel` }
          : {
              severity,
              detail: words(findings),
              hint: severity === 'problem' ? 'the next set, move or unset repairs it' : undefined,
            };
      } finally {
        maps.close();
      }
    }),
  ];
}
