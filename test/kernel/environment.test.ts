/**
 * The kernel tier runs for real or fails: no silent skips. These checks say
 * plainly which prerequisite is missing.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findCgroup2Mount } from '../../lib/kernel/cgroup.js';
import { bpfObjectPath } from '../../lib/instance.js';
import { probeProgramType, ProgType } from '../../lib/kernel/bpf.js';
import { hasPrivileges } from '../../lib/context.js';

describe('kernel test prerequisites', () => {
  it('runs as root', () => {
    expect(hasPrivileges(), 'the kernel tier needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)').toBe(true);
  });
  it('has cgroup v2 mounted', () => {
    expect(existsSync(findCgroup2Mount())).toBe(true);
  });
  it('supports cgroup_skb programs', () => {
    expect(probeProgramType(ProgType.cgroupSkb), 'BPF_PROG_TYPE_CGROUP_SKB must load').toBe(1);
  });
  it('has the built BPF object', () => {
    expect(existsSync(bpfObjectPath({})), 'run make build').toBe(true);
  });
});
