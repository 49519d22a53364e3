/**
 * A small request/response flow for latency under load: `rr.ts server PORT`
 * echoes; `rr.ts client HOST PORT SECONDS` sends 64 bytes, waits for the echo,
 * 20 times a second, and prints the round-trip times (ms) as JSON.
 */
import { createConnection, createServer } from 'node:net';

const [mode, ...args] = process.argv.slice(2);
const MESSAGE = Buffer.alloc(64, 'x');

if (mode === 'server') {
  createServer((socket) => socket.pipe(socket)).listen(Number(args[0]), '0.0.0.0', () =>
    process.stdout.write('ready\n'),
  );
} else if (mode === 'client') {
  const [host, port, seconds] = args;
  const socket = createConnection({ host: host, port: Number(port), noDelay: true });
  const rtts: number[] = [];
  const deadline = Date.now() + Number(seconds) * 1000;
  let sentAt = 0n;
  let received = 0;
  const send = () => {
    if (Date.now() >= deadline) {
      socket.end();
      process.stdout.write(JSON.stringify(rtts) + '\n');
      return;
    }
    received = 0;
    sentAt = process.hrtime.bigint();
    socket.write(MESSAGE);
  };
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received < MESSAGE.length) return;
    rtts.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
    setTimeout(send, 50);
  });
  socket.on('connect', send);
} else {
  process.stderr.write('usage: rr.ts server PORT | client HOST PORT SECONDS\n');
  process.exit(2);
}
