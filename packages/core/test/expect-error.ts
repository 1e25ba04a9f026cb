import { expect } from "vitest";
import { type ErrorCode, VipmeshError } from "../src/errors.ts";

/**
 * Runs `fn`, expects it to throw a VipmeshError with `code`, and expects the
 * message to contain every one of `mentions` (so a person can act on it).
 * Returns the error for further checks.
 */
export function expectVipmeshError(fn: () => unknown, code: ErrorCode, ...mentions: string[]): VipmeshError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, "expected a VipmeshError to be thrown").toBeInstanceOf(VipmeshError);
  const err = thrown as VipmeshError;
  expect(err.code, err.message).toBe(code);
  for (const m of mentions) expect(err.message).toContain(m);
  return err;
}
