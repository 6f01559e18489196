/** Parsing of list-valued CLI flags, shared by the commands. */
import { LuthamError } from '../errors.js';

/** "1,2,3" -> [1, 2, 3]; undefined stays undefined; anything else is a one-line error. */
export function numberList(flag: string, s: string | undefined): number[] | undefined {
  if (s === undefined) return undefined;
  const parts = s.split(',').map((p) => p.trim());
  const nums = parts.map(Number);
  if (parts.some((p) => p === '') || nums.some((n) => !Number.isFinite(n))) throw new LuthamError(`${flag} must be comma-separated numbers, got '${s}'`);
  return nums;
}
