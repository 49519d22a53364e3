/**
 * The only module that loads koffi: the raw functions of libbpf.so.1 and the
 * few libc calls Node lacks. Bound lazily, on the first call, so importing
 * it has no side effects. bpf.ts, libc.ts and info.ts give them types.
 */
import koffi, { type LibraryHandle } from 'koffi';
import { constants as osConstants } from 'node:os';
import { ExitCode, LimiterError, unsupported } from '../errors.js';
import { log } from '../log.js';

/** A failed libbpf, bpf(2) or libc call, with its errno. */
export class SystemCallError extends LimiterError {
  readonly errno: string;
  constructor(call: string, errnoValue: number, exitCode = errnoExitCode(errnoValue)) {
    const name = errnoName(errnoValue);
    super(exitCode, name, `${call}: ${bindings().strerror(errnoValue)} (${name})`);
    this.errno = name;
  }
}

function errnoExitCode(errnoValue: number) {
  return errnoValue === osConstants.errno.EPERM || errnoValue === osConstants.errno.EACCES
    ? ExitCode.notPermitted
    : ExitCode.failed;
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, value]) => [value, name]));
export function errnoName(value: number): string {
  return errnoNames.get(value) ?? `errno ${value}`;
}

export interface Bindings {
  strerror(errnum: number): string;
  flock(fd: number, operation: number): number;
  mount(source: string, target: string, fstype: string, flags: number, data: null): number;
  syscall(number: number, ...args: unknown[]): number | bigint;
  getsockopt(fd: number, level: number, name: number, value: Buffer, length: Uint32Array): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, length: number): number;
  setns(fd: number, nstype: number): number;
  if_nameindex(): bigint | null;
  if_freenameindex(ptr: bigint): void;

  libbpf_version_string(): string;
  libbpf_set_print(fn: unknown): unknown;
  libbpf_probe_bpf_prog_type(type: number, opts: null): number;
  libbpf_num_possible_cpus(): number;

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
  bpf_map_lookup_batch(
    fd: number,
    inBatch: Buffer | null,
    outBatch: Buffer,
    keys: Buffer,
    values: Buffer,
    count: Uint32Array,
    opts: null,
  ): number;
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

  btf__parse(path: string, ext: null): bigint | null;
  btf__free(btf: bigint): void;
  btf__find_by_name_kind(btf: bigint, name: string, kind: number): number;
  btf__type_by_id(btf: bigint, id: number): bigint | null;
  btf__name_by_offset(btf: bigint, offset: number): string | null;
  btf__resolve_size(btf: bigint, id: number): number;

  vsnprintf(buf: Buffer, size: number, fmt: bigint, args: bigint): number;
}

let bound: Bindings | undefined;

export function bindings(): Bindings {
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
    setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t length)'),
    setns: libc.func('int setns(int fd, int nstype)'),
    if_nameindex: libc.func('void *if_nameindex(void)'),
    if_freenameindex: libc.func('void if_freenameindex(void *ptr)'),

    libbpf_version_string: libbpf.func('const char *libbpf_version_string(void)'),
    libbpf_set_print: libbpf.func('void *libbpf_set_print(void *fn)'),
    libbpf_probe_bpf_prog_type: libbpf.func('int libbpf_probe_bpf_prog_type(int type, const void *opts)'),
    libbpf_num_possible_cpus: libbpf.func('int libbpf_num_possible_cpus(void)'),

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
    bpf_map_lookup_batch: libbpf.func(
      'int bpf_map_lookup_batch(int fd, const void *in_batch, _Out_ uint8_t *out_batch, _Out_ uint8_t *keys, _Out_ uint8_t *values, _Inout_ uint32_t *count, const void *opts)',
    ),
    bpf_obj_get_info_by_fd: libbpf.func(
      'int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)',
    ),
    bpf_prog_query: libbpf.func(
      'int bpf_prog_query(int fd, int type, uint32_t flags, _Out_ uint32_t *attach_flags, _Out_ uint32_t *ids, _Inout_ uint32_t *count)',
    ),
    bpf_prog_get_fd_by_id: libbpf.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_get_fd_by_id: libbpf.func('int bpf_map_get_fd_by_id(uint32_t id)'),
    bpf_link_get_fd_by_id: libbpf.func('int bpf_link_get_fd_by_id(uint32_t id)'),

    btf__parse: libbpf.func('void *btf__parse(const char *path, void *ext)'),
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

export function lastErrno(): number {
  return koffi.errno();
}

/** libbpf 1.x returns -errno from int functions. */
export function check(ret: number, call: string): number {
  if (ret < 0) throw new SystemCallError(call, -ret);
  return ret;
}

export function checkPointer(ptr: bigint | null, call: string): bigint {
  if (!ptr) throw new SystemCallError(call, lastErrno() || osConstants.errno.EINVAL);
  return ptr;
}

/** Typed views of C memory, for the struct layouts of info.ts and the lists libc returns. */
export const c = {
  struct: koffi.struct,
  union: koffi.union,
  array: koffi.array,
  sizeof: koffi.sizeof,
  offsetof: koffi.offsetof,
  decode: koffi.decode,
  encode: koffi.encode,
  address: koffi.address,
};
