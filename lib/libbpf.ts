/**
 * The only module that touches the FFI: typed bindings to libbpf.so.1 and the
 * few libc calls Node lacks (flock, mount). Everything is bound lazily, on the
 * first call, so importing this module has no side effects.
 */
import koffi, { type LibraryHandle } from 'koffi';
import { constants as osConstants } from 'node:os';
import { LimiterError, ExitCode, unsupported } from './errors.js';
import { log } from './log.js';

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

/** flock(2) operations. */
export const LockOp = { shared: 1, exclusive: 2, nonBlocking: 4, unlock: 8 } as const;

const BTF_KIND_STRUCT = 4;
const SOL_SOCKET = 1;
const SO_DOMAIN = 39;
const SO_COOKIE = 57;
const CLONE_NEWNET = 0x40000000;
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_NOEXEC = 8;

/** A failed libbpf, bpf(2) or libc call, with its errno. */
export class SystemCallError extends LimiterError {
  readonly errno: string;
  constructor(call: string, errnoValue: number, exitCode = errnoExitCode(errnoValue)) {
    const name = errnoName(errnoValue);
    super(exitCode, name, `${call}: ${describeErrno(errnoValue)} (${name})`);
    this.errno = name;
  }
}

function errnoExitCode(errnoValue: number) {
  return errnoValue === osConstants.errno.EPERM || errnoValue === osConstants.errno.EACCES
    ? ExitCode.notPermitted
    : ExitCode.failed;
}

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, value]) => [value, name]),
);
export function errnoName(value: number): string {
  return errnoNames.get(value) ?? `errno ${value}`;
}
function describeErrno(value: number): string {
  return bindings().strerror(value);
}

interface Bindings {
  strerror(errnum: number): string;
  flock(fd: number, operation: number): number;
  mount(source: string, target: string, fstype: string, flags: number, data: null): number;
  syscall(number: number, ...args: unknown[]): number | bigint;
  getsockopt(fd: number, level: number, name: number, value: Buffer, length: Uint32Array): number;
  setns(fd: number, nstype: number): number;
  if_nameindex(): bigint | null;
  if_freenameindex(ptr: bigint): void;

  libbpf_version_string(): string;
  libbpf_set_print(fn: unknown): unknown;
  libbpf_probe_bpf_prog_type(type: number, opts: null): number;

  bpf_object__open_file(path: string, opts: null): bigint | null;
  bpf_object__load(obj: bigint): number;
  bpf_object__close(obj: bigint): void;
  bpf_object__find_map_by_name(obj: bigint, name: string): bigint | null;
  bpf_object__find_program_by_name(obj: bigint, name: string): bigint | null;
  bpf_map__set_pin_path(map: bigint, path: string): number;
  bpf_map__fd(map: bigint): number;
  bpf_program__fd(prog: bigint): number;

  bpf_link_create(progFd: number, targetFd: number, attachType: number, opts: null): number;
  bpf_link_update(linkFd: number, progFd: number, opts: null): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get(path: string): number;
  bpf_enable_stats(type: number): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: bigint): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, len: Uint32Array): number;
  bpf_prog_query(
    fd: number,
    type: number,
    flags: number,
    attachFlags: Uint32Array,
    ids: Uint32Array,
    count: Uint32Array,
  ): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_map_get_fd_by_id(id: number): number;
  bpf_link_get_fd_by_id(id: number): number;

  btf__parse_elf(path: string, ext: null): bigint | null;
  btf__free(btf: bigint): void;
  btf__find_by_name_kind(btf: bigint, name: string, kind: number): number;
  btf__type_by_id(btf: bigint, id: number): bigint | null;
  btf__name_by_offset(btf: bigint, offset: number): string | null;
  btf__resolve_size(btf: bigint, id: number): number;

  vsnprintf(buf: Buffer, size: number, fmt: bigint, args: bigint): number;
}

let bound: Bindings | undefined;

function bindings(): Bindings {
  if (bound) return bound;
  let libbpf: LibraryHandle;
  let libc: LibraryHandle;
  try {
    libc = koffi.load('libc.so.6');
    libbpf = koffi.load('libbpf.so.1');
  } catch (err) {
    throw unsupported('no-libbpf', `cannot load libbpf.so.1: ${(err as Error).message}`, {
      hint: 'install libbpf 1.x (Debian: apt install libbpf1)',
    });
  }
  const b = {
    strerror: libc.func('const char *strerror(int errnum)'),
    flock: libc.func('int flock(int fd, int operation)'),
    mount: libc.func(
      'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)',
    ),
    vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, void *fmt, void *args)'),
    syscall: libc.func('long syscall(long number, ...)'),
    getsockopt: libc.func(
      'int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)',
    ),
    setns: libc.func('int setns(int fd, int nstype)'),
    if_nameindex: libc.func('void *if_nameindex(void)'),
    if_freenameindex: libc.func('void if_freenameindex(void *ptr)'),

    libbpf_version_string: libbpf.func('const char *libbpf_version_string(void)'),
    libbpf_set_print: libbpf.func('void *libbpf_set_print(void *fn)'),
    libbpf_probe_bpf_prog_type: libbpf.func('int libbpf_probe_bpf_prog_type(int type, const void *opts)'),

    bpf_object__open_file: libbpf.func('void *bpf_object__open_file(const char *path, const void *opts)'),
    bpf_object__load: libbpf.func('int bpf_object__load(void *obj)'),
    bpf_object__close: libbpf.func('void bpf_object__close(void *obj)'),
    bpf_object__find_map_by_name: libbpf.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    bpf_object__find_program_by_name: libbpf.func(
      'void *bpf_object__find_program_by_name(void *obj, const char *name)',
    ),
    bpf_map__set_pin_path: libbpf.func('int bpf_map__set_pin_path(void *map, const char *path)'),
    bpf_map__fd: libbpf.func('int bpf_map__fd(void *map)'),
    bpf_program__fd: libbpf.func('int bpf_program__fd(void *prog)'),

    bpf_link_create: libbpf.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    bpf_link_update: libbpf.func('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    bpf_obj_pin: libbpf.func('int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get: libbpf.func('int bpf_obj_get(const char *path)'),
    bpf_enable_stats: libbpf.func('int bpf_enable_stats(int type)'),
    bpf_map_lookup_elem: libbpf.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ uint8_t *value)'),
    bpf_map_update_elem: libbpf.func(
      'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
    ),
    bpf_map_delete_elem: libbpf.func('int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: libbpf.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ uint8_t *next)'),
    bpf_obj_get_info_by_fd: libbpf.func(
      'int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)',
    ),
    bpf_prog_query: libbpf.func(
      'int bpf_prog_query(int fd, int type, uint32_t flags, _Out_ uint32_t *attach_flags, _Out_ uint32_t *ids, _Inout_ uint32_t *count)',
    ),
    bpf_prog_get_fd_by_id: libbpf.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_get_fd_by_id: libbpf.func('int bpf_map_get_fd_by_id(uint32_t id)'),
    bpf_link_get_fd_by_id: libbpf.func('int bpf_link_get_fd_by_id(uint32_t id)'),

    btf__parse_elf: libbpf.func('void *btf__parse_elf(const char *path, void *ext)'),
    btf__free: libbpf.func('void btf__free(void *btf)'),
    btf__find_by_name_kind: libbpf.func('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
    btf__type_by_id: libbpf.func('void *btf__type_by_id(void *btf, uint32_t id)'),
    btf__name_by_offset: libbpf.func('const char *btf__name_by_offset(void *btf, uint32_t offset)'),
    btf__resolve_size: libbpf.func('int64_t btf__resolve_size(void *btf, uint32_t id)'),
  } as unknown as Bindings;

  // va_list reaches the callback as a pointer (x86-64: array decay; arm64: passed by reference).
  const printProto = koffi.proto(null, 'int', ['int', 'void *', 'void *']);
  // libbpf's messages (warnings and the verifier log included) are debug output: -v shows them.
  const text = Buffer.alloc(4096);
  const print = koffi.register((_level: number, fmt: bigint, args: bigint) => {
    const length = Math.min(b.vsnprintf(text, text.length, fmt, args), text.length - 1);
    log.debug(text.toString('utf8', 0, Math.max(length, 0)).trimEnd());
    return 0;
  }, koffi.pointer(printProto));
  b.libbpf_set_print(print);
  bound = b;
  return b;
}

function lastErrno(): number {
  return koffi.errno();
}

/** libbpf 1.x returns -errno from int functions. */
function check(ret: number, call: string): number {
  if (ret < 0) throw new SystemCallError(call, -ret);
  return ret;
}

function checkPointer(ptr: bigint | null, call: string): bigint {
  if (!ptr) throw new SystemCallError(call, lastErrno() || osConstants.errno.EINVAL);
  return ptr;
}

export function libbpfVersion(): string {
  return bindings().libbpf_version_string();
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
  if (fd === -osConstants.errno.ENOENT) return null;
  return check(fd, `open pinned ${path}`);
}

/** Turns on per-program run time statistics until the returned fd is closed. */
export function enableRunTimeStats(): number {
  const BPF_STATS_RUN_TIME = 0;
  return check(bindings().bpf_enable_stats(BPF_STATS_RUN_TIME), 'enable BPF run time statistics');
}

export function mapLookup(fd: number, key: Buffer, value: Buffer): boolean {
  const ret = bindings().bpf_map_lookup_elem(fd, key, value);
  if (ret === -osConstants.errno.ENOENT) return false;
  check(ret, 'map lookup');
  return true;
}

export function mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number = UpdateFlag.any): void {
  check(bindings().bpf_map_update_elem(fd, key, value, BigInt(flags)), 'map update');
}

/** false when the key was not there. */
export function mapDelete(fd: number, key: Buffer): boolean {
  const ret = bindings().bpf_map_delete_elem(fd, key);
  if (ret === -osConstants.errno.ENOENT) return false;
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
    if (ret === -osConstants.errno.ENOENT) return keys;
    check(ret, 'map iteration');
    keys.push(next);
    previous = next;
  }
}

/** Fills info (struct bpf_{prog,map,link}_info); returns the length the kernel wrote. */
export function objInfo(fd: number, info: Buffer): number {
  const length = new Uint32Array([info.length]);
  check(bindings().bpf_obj_get_info_by_fd(fd, info, length), 'object info');
  return length[0]!;
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
  const get = { prog: b.bpf_prog_get_fd_by_id, map: b.bpf_map_get_fd_by_id, link: b.bpf_link_get_fd_by_id }[kind];
  const fd = get(id);
  if (fd === -osConstants.errno.ENOENT) return null;
  return check(fd, `open ${kind} id ${id}`);
}

export function flock(fd: number, operation: number): number {
  return bindings().flock(fd, operation) === 0 ? 0 : lastErrno();
}

/** A pidfd for a process, or null when it has gone. */
export function pidfdOpen(pid: number): number | null {
  const fd = Number(bindings().syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  if (fd >= 0) return fd;
  const errno = lastErrno();
  if (errno === osConstants.errno.ESRCH) return null;
  throw new SystemCallError(`pidfd_open ${pid}`, errno);
}

/** A duplicate, in this process, of another process's file descriptor; null if it is closed. */
export function pidfdGetfd(pidfd: number, targetFd: number): number | null {
  const fd = Number(bindings().syscall(SYS_PIDFD_GETFD, 'int', pidfd, 'int', targetFd, 'unsigned int', 0));
  if (fd >= 0) return fd;
  const errno = lastErrno();
  if (errno === osConstants.errno.EBADF || errno === osConstants.errno.ESRCH) return null;
  throw new SystemCallError('pidfd_getfd', errno);
}

/** The address family (SO_DOMAIN) and cookie (SO_COOKIE) of a socket. */
export function socketIdentity(fd: number): { domain: number; cookie: string } {
  const b = bindings();
  const value = Buffer.alloc(8);
  const length = new Uint32Array([4]);
  if (b.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, value, length) !== 0) {
    throw new SystemCallError('getsockopt SO_DOMAIN', lastErrno());
  }
  const domain = value.readInt32LE(0);
  length[0] = 8;
  if (b.getsockopt(fd, SOL_SOCKET, SO_COOKIE, value, length) !== 0) {
    throw new SystemCallError('getsockopt SO_COOKIE', lastErrno());
  }
  return { domain, cookie: value.readBigUInt64LE(0).toString() };
}

/** Switches this thread into the network namespace open at fd. */
export function setNetns(fd: number): void {
  if (bindings().setns(fd, CLONE_NEWNET) !== 0) throw new SystemCallError('setns', lastErrno());
}

/** The network interfaces of this thread's network namespace. */
export function interfaces(): Array<{ index: number; name: string }> {
  const b = bindings();
  const list = checkPointer(b.if_nameindex(), 'if_nameindex');
  try {
    const result: Array<{ index: number; name: string }> = [];
    // struct if_nameindex { unsigned int if_index; char *if_name; }, ended by {0, NULL}
    for (let offset = 0; ; offset += 16) {
      const index = koffi.decode(list, offset, 'uint32_t') as number;
      if (index === 0) return result;
      result.push({ index, name: koffi.decode(list, offset + 8, 'const char *') as string });
    }
  } finally {
    b.if_freenameindex(list);
  }
}

export function mountBpffs(target: string): void {
  if (bindings().mount('bpf', target, 'bpf', MS_NOSUID | MS_NODEV | MS_NOEXEC, null) !== 0) {
    throw new SystemCallError(`mount bpffs at ${target}`, lastErrno());
  }
}

export interface StructLayout {
  size: number;
  /** byte offset and size of every member */
  members: Record<string, { offset: number; size: number }>;
}

/** Layout of a struct as recorded in an ELF object's BTF, or null if it has no such struct. */
export function btfStructLayout(objectPath: string, structName: string): StructLayout | null {
  const b = bindings();
  const btf = checkPointer(b.btf__parse_elf(objectPath, null), `read BTF of ${objectPath}`);
  try {
    const id = b.btf__find_by_name_kind(btf, structName, BTF_KIND_STRUCT);
    if (id < 0) return null;
    const type = checkPointer(b.btf__type_by_id(btf, id), 'BTF type');
    // struct btf_type { u32 name_off; u32 info; u32 size; } then vlen × struct btf_member { u32 name_off, type, offset; }
    const [, info, size] = koffi.decode(type, 'uint32_t', 3) as number[];
    const vlen = info! & 0xffff;
    const bitfields = (info! >>> 31) === 1;
    const raw = koffi.decode(type, 12, 'uint32_t', vlen * 3) as number[];
    const members: StructLayout['members'] = {};
    for (let i = 0; i < vlen; i++) {
      const [nameOff, memberType, offset] = raw.slice(i * 3, i * 3 + 3) as [number, number, number];
      const bitOffset = bitfields ? offset & 0xffffff : offset;
      members[b.btf__name_by_offset(btf, nameOff) ?? `#${i}`] = {
        offset: bitOffset / 8,
        size: Number(b.btf__resolve_size(btf, memberType)),
      };
    }
    return { size: size!, members };
  } finally {
    b.btf__free(btf);
  }
}
