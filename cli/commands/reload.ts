import { accessSync, constants as fsConstants, realpathSync } from 'node:fs';
import { unsupported, usageError } from '../../lib/errors.js';
import { preflight } from '../../lib/context.js';
import { reload } from '../../lib/ops/reload.js';

interface ReloadOptions {
  object?: string;
  cgroupPath?: string;
}

export async function run(options: ReloadOptions): Promise<void> {
  const ctx = preflight({ object: options.object === undefined });
  const objectPath = options.object ?? ctx.objectPath;
  try {
    accessSync(objectPath, fsConstants.R_OK);
  } catch {
    throw unsupported('no-object', `BPF object ${objectPath} not found`);
  }
  if (options.cgroupPath !== undefined) {
    let real: string | null = null;
    try {
      real = realpathSync(options.cgroupPath);
    } catch {
      // reported below
    }
    if (real !== ctx.instance.cgroupDir) {
      throw usageError(
        'bad-cgroup',
        `the program of instance ${ctx.instance.name} is attached at ${ctx.instance.cgroupDir}, not ${options.cgroupPath}`,
        {
          hint: 'limiter attaches to its own cgroup only; omit --cgroup-path',
        },
      );
    }
  }
  const result = await reload(ctx, objectPath);
  process.stdout.write(`reloaded ${objectPath} into ${result.links} link(s); limits, tokens and counters kept\n`);
}
