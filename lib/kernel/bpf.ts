/** libbpf and the bpf(2) calls, typed: objects, links, pins, maps, BTF. */
import { constants as osConstants } from 'node:os';
import { bindings, c, check, checkPointer } from './ffi.js';

export { SystemCallError } from './ffi.js';

/** enum bpf_attach_type */
export const AttachType = {
  cgroupInetIngress: 0,
  cgroupInetEgress: 1,
  cgroupSockOps: 3,
  tcxIngress: 46,
  tcxEgress: 47,
} as const;

/** enum bpf_prog_type */
export const ProgType = {
  schedCls: 3,
  cgroupSkb: 8,
} as const;

/** Flags of bpf_map_update_elem. */
export const UpdateFlag = { any: 0, noExist: 1, exist: 2 } as const;

const BTF_KIND_STRUCT = 4;
const { ENOENT } = osConstants.errno;

export function libbpfVersion(): string {
  return bindings().libbpf_version_string();
}

/** The CPUs a per-CPU map holds a value for. */
export function possibleCpus(): number {
  return check(bindings().libbpf_num_possible_cpus(), 'count possible CPUs');
}

/** 1 supported, 0 not, <0 error. */
export function probeProgramType(type: number): number {
  return bindings().libbpf_probe_bpf_prog_type(type, null);
}

export class BpfObject {
  private constructor(private ptr: bigint | null) {}

  static open(path: string): BpfObject {
    return new BpfObject(checkPointer(bindings().bpf_object__open_file(path, null), `open BPF object ${path}`));
  }

  private get handle(): bigint {
    if (!this.ptr) throw new Error('BPF object used after close');
    return this.ptr;
  }

  findMap(name: string): bigint | null {
    return bindings().bpf_object__find_map_by_name(this.handle, name);
  }

  findProgram(name: string): bigint | null {
    return bindings().bpf_object__find_program_by_name(this.handle, name);
  }

  /** Maps with a pin path reuse a compatible pinned map or are pinned there on load. */
  setMapPinPath(map: bigint, path: string): void {
    check(bindings().bpf_map__set_pin_path(map, path), `pin path ${path}`);
  }

  load(): void {
    check(bindings().bpf_object__load(this.handle), 'load BPF object');
  }

  mapFd(map: bigint): number {
    return check(bindings().bpf_map__fd(map), 'map fd');
  }

  programFd(prog: bigint): number {
    return check(bindings().bpf_program__fd(prog), 'program fd');
  }

  close(): void {
    if (this.ptr) bindings().bpf_object__close(this.ptr);
    this.ptr = null;
  }
}

/** Creates a BPF link attaching a program to a target (a cgroup fd, or an ifindex for tcx). */
export function linkCreate(progFd: number, target: number, attachType: number): number {
  return check(bindings().bpf_link_create(progFd, target, attachType, null), 'attach program');
}

/** Atomically replaces the program of a link (BPF_LINK_UPDATE). */
export function linkUpdate(linkFd: number, progFd: number): void {
  check(bindings().bpf_link_update(linkFd, progFd, null), 'replace program in link');
}

export function objPin(fd: number, path: string): void {
  check(bindings().bpf_obj_pin(fd, path), `pin at ${path}`);
}

/** fd of a pinned object, or null when nothing is pinned at path. */
export function objGet(path: string): number | null {
  const fd = bindings().bpf_obj_get(path);
  if (fd === -ENOENT) return null;
  return check(fd, `open pinned ${path}`);
}

/** Turns on per-program run time statistics until the returned fd is closed. */
export function enableRunTimeStats(): number {
  const BPF_STATS_RUN_TIME = 0;
  return check(bindings().bpf_enable_stats(BPF_STATS_RUN_TIME), 'enable BPF run time statistics');
}

export function mapLookup(fd: number, key: Buffer, value: Buffer): boolean {
  const ret = bindings().bpf_map_lookup_elem(fd, key, value);
  if (ret === -ENOENT) return false;
  check(ret, 'map lookup');
  return true;
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number = UpdateFlag.any): void {
  check(bindings().bpf_map_update_elem(fd, key, value, BigInt(flags)), 'map update');
}

/** false when the key was not there. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const ret = bindings().bpf_map_delete_elem(fd, key);
  if (ret === -ENOENT) return false;
  check(ret, 'map delete');
  return true;
}

/** Every key of a map, each a fresh Buffer of keySize bytes. */
export function mapKeys(fd: number, keySize: number): Buffer[] {
  const keys: Buffer[] = [];
  let previous: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    const ret = bindings().bpf_map_get_next_key(fd, previous, next);
    if (ret === -ENOENT) return keys;
    check(ret, 'map iteration');
    keys.push(next);
    previous = next;
  }
}

/**
 * Every value of an array map, in one bpf(2) call: entry i at i * valueSize.
 * (Arrays hand them out in key order.)
 */
export function arrayValues(fd: number, valueSize: number, entries: number): Buffer {
  const keys = Buffer.alloc(4 * entries);
  const values = Buffer.alloc(valueSize * entries);
  const count = new Uint32Array([entries]);
  const ret = bindings().bpf_map_lookup_batch(fd, null, Buffer.alloc(4), keys, values, count, null);
  if (ret !== -ENOENT) check(ret, 'map batch lookup');
  if (count[0] !== entries) throw new Error(`batch lookup read ${count[0]} of ${entries} entries`);
  return values;
}

/** Fills info (a struct bpf_{prog,map,link}_info); info.ts gives the layouts. */
export function objInfo(fd: number, info: Buffer): void {
  const length = new Uint32Array([info.length]);
  check(bindings().bpf_obj_get_info_by_fd(fd, info, length), 'object info');
}

/** Ids of the programs attached to a cgroup for one attach type (the cgroup's own, not inherited). */
export function queryCgroupPrograms(cgroupFd: number, attachType: number): number[] {
  const attachFlags = new Uint32Array(1);
  const ids = new Uint32Array(64);
  const count = new Uint32Array([ids.length]);
  check(bindings().bpf_prog_query(cgroupFd, attachType, 0, attachFlags, ids, count), 'query cgroup programs');
  return Array.from(ids.subarray(0, count[0]));
}

export type BpfObjectKind = 'prog' | 'map' | 'link';

/** fd of a kernel object by id, or null when no object has that id any more. */
export function fdById(kind: BpfObjectKind, id: number): number | null {
  const b = bindings();
  const fd =
    kind === 'prog'
      ? b.bpf_prog_get_fd_by_id(id)
      : kind === 'map'
        ? b.bpf_map_get_fd_by_id(id)
        : b.bpf_link_get_fd_by_id(id);
  if (fd === -ENOENT) return null;
  return check(fd, `open ${kind} id ${id}`);
}

export interface StructLayout {
  size: number;
  /** byte offset and size of every member */
  members: Record<string, { offset: number; size: number }>;
}

/**
 * Layout of a struct as recorded in BTF: of an ELF object, or of the kernel
 * itself (/sys/kernel/btf/vmlinux). null when it has no such struct.
 */
export function btfStructLayout(btfPath: string, structName: string): StructLayout | null {
  const b = bindings();
  const btf = checkPointer(b.btf__parse(btfPath, null), `read BTF of ${btfPath}`);
  try {
    const id = b.btf__find_by_name_kind(btf, structName, BTF_KIND_STRUCT);
    if (id < 0) return null;
    const type = checkPointer(b.btf__type_by_id(btf, id), 'BTF type');
    // struct btf_type { u32 name_off; u32 info; u32 size; } then vlen × struct btf_member { u32 name_off, type, offset; }
    const [, info, size] = c.decode(type, 'uint32_t', 3) as number[];
    const vlen = info & 0xffff;
    const bitfields = info >>> 31 === 1;
    const raw = c.decode(type, 12, 'uint32_t', vlen * 3) as number[];
    const members: StructLayout['members'] = {};
    for (let i = 0; i < vlen; i++) {
      const [nameOff, memberType, offset] = raw.slice(i * 3, i * 3 + 3) as [number, number, number];
      const bitOffset = bitfields ? offset & 0xffffff : offset;
      members[b.btf__name_by_offset(btf, nameOff) ?? `#${i}`] = {
        offset: Math.floor(bitOffset / 8),
        size: Number(b.btf__resolve_size(btf, memberType)),
      };
    }
    return { size: size, members };
  } finally {
    b.btf__free(btf);
  }
}
