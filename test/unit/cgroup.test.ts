import { describe, expect, it } from 'vitest';
import { thrown } from '../harness/thrown.js';
import { findCgroup2Mount, parseMountinfo } from '../../lib/kernel/cgroup.js';

const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime - bpf bpf rw
`;

describe('mountinfo', () => {
  it('finds cgroup2 in hybrid mode', () => {
    expect(findCgroup2Mount(parseMountinfo(hybrid))).toBe('/sys/fs/cgroup/unified');
  });

  it('prefers /sys/fs/cgroup on pure-v2 hosts', () => {
    const text = `25 1 0:22 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n26 1 0:23 / /mnt/other rw - cgroup2 cgroup2 rw\n`;
    expect(findCgroup2Mount(parseMountinfo(text))).toBe('/sys/fs/cgroup');
  });

  it('decodes octal escapes and optional fields', () => {
    const text = `50 1 0:40 / /mnt/with\\040space rw shared:9 master:2 - bpf bpf rw\n`;
    expect(parseMountinfo(text)).toEqual([{ mountPoint: '/mnt/with space', fsType: 'bpf' }]);
  });

  it('reports a missing cgroup2 as unsupported (exit 5)', () => {
    expect(thrown(() => findCgroup2Mount(parseMountinfo(hybrid.replace(/cgroup2/g, 'xfs'))))).toMatchObject({
      exitCode: 5,
      code: 'no-cgroup2',
    });
  });
});
