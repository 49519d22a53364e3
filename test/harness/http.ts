/**
 * Real clients and servers users have: python's http.server and curl, in a
 * network namespace of the test's own; and a stand-in for a systemd unit's
 * or a container's cgroup, which the test creates and removes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findCgroup2Mount, listPids } from '../../lib/kernel/cgroup.js';
import { runCli, sleep } from './cli.js';
import { busiestSender } from './delayline.js';
import {
  collect,
  freePort,
  gated,
  inNetns,
  LOOPBACK,
  netns,
  waitUntil,
  type Exited,
  type Family,
  type Gated,
} from './traffic.js';

/** A directory of files to serve: name → size in bytes. */
export function servedFiles(files: Record<string, number>): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'limiter-www-'));
  for (const [name, size] of Object.entries(files)) writeFileSync(join(dir, name), Buffer.alloc(size, 0x5a));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface HttpServer extends Gated {
  port: number;
  url(file: string): string;
}

/**
 * python's http.server, run as `python3 -m http.server` runs it, but with its
 * listener set to a congestion control when one is given: what it accepts
 * inherits it (per socket; the system default stays as it is).
 */
const HTTP_SERVER_WITH_CONGESTION = `
import functools, http.server, socket, sys
congestion, bind, port, directory = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ':' in bind else socket.AF_INET
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congestion.encode())
        super().server_bind()
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
Server((bind, port), handler).serve_forever()
`;

export interface HttpServerOptions {
  /** runs between its start and its exec (to put it into a cgroup) */
  before?: (pid: number) => void;
  /** the congestion control of the connections it accepts; the system's default when absent */
  congestion?: 'cubic' | 'bbr';
}

/**
 * python's http.server on loopback in netns, started before anything is
 * limited. Resolves once it listens.
 */
export async function httpServer(
  netns: string,
  family: Family,
  dir: string,
  { before, congestion }: HttpServerOptions = {},
): Promise<HttpServer> {
  const port = await freePort();
  const address = LOOPBACK[family];
  const python = congestion
    ? ['python3', '-c', HTTP_SERVER_WITH_CONGESTION, congestion, address, String(port), dir]
    : ['python3', '-m', 'http.server', '--bind', address, '--directory', dir, String(port)];
  const [command, ...args] = inNetns(netns, python);
  const server = gated(command, args, 300_000);
  before?.(server.pid);
  server.go();
  await waitUntil(() => listens(netns, port), `http.server on port ${port}`);
  const host = family === 'ipv6' ? `[${address}]` : address;
  return { ...server, port, url: (file) => `http://${host}:${port}/${file}` };
}

function listens(netns: string, port: number): boolean {
  return spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Htln', `sport = :${port}`], {
    encoding: 'utf8',
  }).stdout.includes(String(port));
}

export interface Download {
  /** bytes per second over the whole transfer, as curl measures it */
  speed: number;
  bytes: number;
  seconds: number;
}

/** curl downloads url inside netns, into nothing; resolves with what it measured. */
export async function curl(netns: string, url: string, extra: string[] = []): Promise<Download> {
  const [command, ...args] = inNetns(netns, [
    'curl',
    '-sS',
    '--max-time',
    '60',
    '-o',
    '/dev/null',
    '-w',
    '%{speed_download} %{size_download} %{time_total}',
    ...extra,
    url,
  ]);
  const exited: Exited = await collect(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }), 90_000);
  if (exited.code !== 0) throw new Error(`curl ${url}: ${exited.stderr}`);
  const [speed, bytes, seconds] = exited.stdout.trim().split(' ').map(Number);
  return { speed: speed, bytes: bytes, seconds: seconds };
}

/** A curl download into a file, running: its size can be sampled while it grows. */
export function curlToFile(netns: string, url: string, extra: string[] = []): Gated & { file: string; size(): number } {
  const dir = mkdtempSync(join(tmpdir(), 'limiter-dl-'));
  const file = join(dir, 'download');
  const [command, ...args] = inNetns(netns, ['curl', '-sS', '--max-time', '60', '-o', file, ...extra, url]);
  const download = gated(command, args);
  return {
    ...download,
    file,
    size: () => (existsSync(file) ? statSync(file).size : 0),
    kill: () => {
      download.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * curl downloading a large file from python's http.server on loopback, in a
 * namespace of its own, limited with `limiter set --pid <curl> ...setArgs`
 * before it starts: its bytes per second after the first warmMs, and the
 * segment size the server sends it.
 */
export async function limitedLoopbackDownload(
  env: NodeJS.ProcessEnv,
  tag: string,
  setArgs: string[],
  { warmMs = 2000, measureMs = 5000 } = {},
): Promise<{ bytesPerSec: number; senderMss: number }> {
  const ns = netns(tag);
  const www = servedFiles({ 'big.bin': 128 * 1048576 });
  const stops: Array<() => void> = [() => ns.remove(), () => www.remove()];
  try {
    const server = await httpServer(ns.name, 'ipv4', www.dir);
    stops.unshift(() => server.kill());
    const download = curlToFile(ns.name, server.url('big.bin'));
    stops.unshift(() => download.kill());
    const set = runCli(['set', '--pid', String(download.pid), ...setArgs], env);
    if (set.code !== 0) throw new Error(`limiter set: ${set.stderr}`);
    download.go();
    await sleep(warmMs);
    const from = { bytes: download.size(), at: process.hrtime.bigint() };
    await sleep(measureMs);
    const bytesPerSec = (download.size() - from.bytes) / (Number(process.hrtime.bigint() - from.at) / 1e9);
    return { bytesPerSec, senderMss: busiestSender(ns.name).mss };
  } finally {
    stops.forEach((stop) => stop());
  }
}

export interface StandIn {
  /** the unit's name, e.g. web-1234.service */
  unit: string;
  /** the cgroup path as /proc/<pid>/cgroup shows it */
  path: string;
  dir: string;
  /** removes the cgroups; the test has ended their processes */
  remove(): void;
}

/**
 * A stand-in for a systemd service or a container: <cgroup2>/limiter-test-<tag>.slice/<unit>,
 * which systemd would have made. No real unit's cgroup is ever touched.
 */
export function standInCgroup(tag: string): StandIn {
  const id = `${tag}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const slice = `/limiter-test-${id}.slice`;
  const unit = `web-${id}.service`;
  const mount = findCgroup2Mount();
  mkdirSync(join(mount, slice));
  mkdirSync(join(mount, slice, unit));
  const dir = join(mount, slice, unit);
  return {
    unit,
    path: `${slice}/${unit}`,
    dir,
    remove: () => {
      for (const d of [dir, join(mount, slice)]) {
        for (let i = 0; i < 50 && existsSync(d) && listPids(d).length > 0; i++) spawnSync('sleep', ['0.1']);
        if (existsSync(d)) rmdirSync(d);
      }
    },
  };
}

/** Puts a process the test started into a cgroup the test made. */
export function enter(dir: string, pid: number): void {
  writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
}
