/** The error fn throws, for expect(...).toMatchObject({ exitCode, code }). Fails when it returns. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but none was thrown');
}
