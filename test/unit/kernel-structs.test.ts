/**
 * lib/kernel/info.ts declares the kernel's bpf_{prog,map,link}_info as koffi
 * structs; their offsets must be the running kernel's, from its own BTF.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { btfStructLayout } from '../../lib/kernel/bpf.js';
import { c } from '../../lib/kernel/ffi.js';
import { LinkInfo, MapInfo, ProgInfo } from '../../lib/kernel/info.js';

const VMLINUX = '/sys/kernel/btf/vmlinux';

describe('kernel info structs', () => {
  it('can read the kernel BTF', () => expect(existsSync(VMLINUX)).toBe(true));

  it.each([
    ['bpf_prog_info', ProgInfo],
    ['bpf_map_info', MapInfo],
    ['bpf_link_info', LinkInfo],
  ] as const)('%s has the kernel offsets and sizes', (name, type) => {
    const kernel = btfStructLayout(VMLINUX, name)!;
    expect(kernel).not.toBeNull();
    const fields = Object.keys(c.decode(Buffer.alloc(c.sizeof(type)), type) as object);
    for (const field of fields) {
      // The link info's union is anonymous in the kernel: it is the member after prog_id.
      const member = field === 'target' ? Object.values(kernel.members)[3] : kernel.members[field];
      expect(member, `${name}.${field}`).toBeDefined();
      expect(c.offsetof(type, field), `${name}.${field}`).toBe(member.offset);
    }
  });
});
