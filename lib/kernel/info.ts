/**
 * struct bpf_{prog,map,link}_info as koffi struct types, with the fields the
 * tool reads. test/unit/kernel-structs.test.ts checks their offsets against
 * the running kernel's BTF.
 */
import { objInfo } from './bpf.js';
import { c } from './ffi.js';

const u32 = 'uint32_t';
const u64 = 'uint64_t';
const objectName = () => c.array('char', 16, 'String');

export const ProgInfo = c.struct('bpf_prog_info', {
  type: u32,
  id: u32,
  tag: c.array('uint8_t', 8),
  jited_prog_len: u32,
  xlated_prog_len: u32,
  jited_prog_insns: u64,
  xlated_prog_insns: u64,
  load_time: u64,
  created_by_uid: u32,
  nr_map_ids: u32,
  map_ids: u64,
  name: objectName(),
  ifindex: u32,
  gpl_compatible: u32,
  netns_dev: u64,
  netns_ino: u64,
  nr_jited_ksyms: u32,
  nr_jited_func_lens: u32,
  jited_ksyms: u64,
  jited_func_lens: u64,
  btf_id: u32,
  func_info_rec_size: u32,
  func_info: u64,
  nr_func_info: u32,
  nr_line_info: u32,
  line_info: u64,
  jited_line_info: u64,
  nr_jited_line_info: u32,
  line_info_rec_size: u32,
  jited_line_info_rec_size: u32,
  nr_prog_tags: u32,
  prog_tags: u64,
  run_time_ns: u64,
  run_cnt: u64,
});

export const MapInfo = c.struct('bpf_map_info', {
  type: u32,
  id: u32,
  key_size: u32,
  value_size: u32,
  max_entries: u32,
  map_flags: u32,
  name: objectName(),
});

/** The head of struct bpf_link_info and the two members of its union that the tool's links use. */
const CgroupTarget = c.struct('bpf_link_info_cgroup', { cgroup_id: u64, attach_type: u32 });
const TcxTarget = c.struct('bpf_link_info_tcx', { ifindex: u32, attach_type: u32 });
export const LinkInfo = c.struct('bpf_link_info', {
  type: u32,
  id: u32,
  prog_id: u32,
  target: c.union({ cgroup: CgroupTarget, tcx: TcxTarget }),
});

type KoffiType = Parameters<typeof c.sizeof>[0];

/** The kernel's info about the object open at fd, with some fields given beforehand (buffers to fill). */
function fill(fd: number, type: KoffiType, input: Record<string, unknown> = {}): Buffer {
  const buffer = Buffer.alloc(c.sizeof(type));
  if (Object.keys(input).length > 0) c.encode(buffer, type, { ...(c.decode(buffer, type) as object), ...input });
  objInfo(fd, buffer);
  return buffer;
}

function read<T>(fd: number, type: KoffiType, input: Record<string, unknown> = {}): T {
  return c.decode(fill(fd, type, input), type) as T;
}

export interface ProgramInfo {
  id: number;
  name: string;
  runTimeNs: number;
  runCount: number;
}

export function programInfo(fd: number): ProgramInfo {
  const info = read<{ id: number; name: string; run_time_ns: number | bigint; run_cnt: number | bigint }>(fd, ProgInfo);
  return { id: info.id, name: info.name, runTimeNs: Number(info.run_time_ns), runCount: Number(info.run_cnt) };
}

/** The ids of the maps a program uses. */
export function programMapIds(fd: number): number[] {
  const { nr_map_ids: count } = read<{ nr_map_ids: number }>(fd, ProgInfo);
  if (count === 0) return [];
  const ids = new Uint32Array(count);
  read(fd, ProgInfo, { nr_map_ids: count, map_ids: c.address(ids) });
  return Array.from(ids);
}

export interface MapInfoView {
  id: number;
  name: string;
  maxEntries: number;
}

export function mapInfo(fd: number): MapInfoView {
  const info = read<{ id: number; name: string; max_entries: number }>(fd, MapInfo);
  return { id: info.id, name: info.name, maxEntries: info.max_entries };
}

export interface LinkInfoView {
  id: number;
  programId: number;
  /** the cgroup id of a cgroup link */
  cgroupId: number;
  /** the interface of a tcx link */
  ifindex: number;
}

export function linkInfo(fd: number): LinkInfoView {
  const buffer = fill(fd, LinkInfo);
  const head = c.decode(buffer, LinkInfo) as { id: number; prog_id: number };
  // koffi reads a union as none of its members: each is decoded where the union starts.
  const at = c.offsetof(LinkInfo, 'target');
  const cgroup = c.decode(buffer, at, CgroupTarget) as { cgroup_id: number | bigint };
  const tcx = c.decode(buffer, at, TcxTarget) as { ifindex: number };
  return { id: head.id, programId: head.prog_id, cgroupId: Number(cgroup.cgroup_id), ifindex: tcx.ifindex };
}
