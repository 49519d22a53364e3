import { usageError } from '../lib/errors.js';
import { makeLimit, type Limits } from '../lib/kernel/abi.js';
import { parseRate, parseSize } from '../lib/units.js';

export interface LimitOptions {
  rate?: string;
  bucket?: string;
  ingressRate?: string;
  ingressBucket?: string;
}

/** The directions the options give: at least one rate, and a bucket only with its rate. */
export function limitsFromOptions(options: LimitOptions): Partial<Limits> {
  const limits: Partial<Limits> = {};
  const direction = (rate: string | undefined, bucket: string | undefined, label: string) => {
    if (rate === undefined) {
      if (bucket !== undefined) throw usageError('bucket-without-rate', `--${label}bucket needs --${label}rate`);
      return undefined;
    }
    return makeLimit(
      parseRate(rate, `${label}rate`),
      bucket === undefined ? undefined : parseSize(bucket, `${label}bucket`),
    );
  };
  const egress = direction(options.rate, options.bucket, '');
  const ingress = direction(options.ingressRate, options.ingressBucket, 'ingress-');
  if (egress) limits.egress = egress;
  if (ingress) limits.ingress = ingress;
  if (!egress && !ingress) throw usageError('no-rate', 'give --rate (upload), --ingress-rate (download) or both');
  return limits;
}
