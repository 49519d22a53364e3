import { afterEach } from 'vitest';
import { destroyInstance, uniqueInstance } from './cli.js';

/**
 * Cleanup for a test file: defer(fn) runs fn after the current test, pass or
 * fail, newest first; instance(tag) gives a fresh instance that is destroyed then.
 */
export function testScope() {
  const pending: Array<() => void> = [];
  afterEach(() => {
    while (pending.length) {
      try {
        pending.pop()!();
      } catch (err) {
        console.error('cleanup failed:', err);
      }
    }
  });
  const defer = (fn: () => void) => void pending.push(fn);
  return {
    defer,
    instance(tag: string): { instance: string; env: NodeJS.ProcessEnv } {
      const instance = uniqueInstance(tag);
      defer(() => destroyInstance(instance));
      return { instance, env: { LIMITER_INSTANCE: instance } };
    },
  };
}
