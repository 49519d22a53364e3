import { preflight } from '../../lib/context.js';
import { usageError } from '../../lib/errors.js';
import { metricsText, serveMetrics } from '../../lib/ops/metrics.js';

/** host:port, [v6]:port */
function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw usageError('bad-listen', `invalid --listen '${text}': expected host:port, e.g. 127.0.0.1:9417 or [::1]:9417`);
  }
  return { host: match[1] ?? match[2], port };
}

/** Loopback unless an address is given: an explicit one opens it wider. */
export const DEFAULT_LISTEN = '127.0.0.1:9417';

export async function run(options: { listen?: string | true }): Promise<void> {
  const address = options.listen === true ? DEFAULT_LISTEN : options.listen;
  const listen = address === undefined ? null : parseListen(address);
  const ctx = preflight();
  if (!listen) {
    process.stdout.write(metricsText(ctx));
    return;
  }
  const served = await serveMetrics(ctx, listen.host, listen.port);
  process.stderr.write(`limiter: serving metrics at http://${address}/metrics\n`);
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
      process.once(signal, () => void served.stop().then(resolve));
  });
}
