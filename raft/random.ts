/**
 * Randomness enters the core only through this interface, so a seeded source
 * makes a whole simulation replayable.
 */
export interface RandomSource {
  /** A uniformly distributed integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}

/**
 * A small seeded generator (SplitMix32-style mixing over a 32-bit counter).
 * Deterministic across platforms; not for secrets.
 */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  const next32 = (): number => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  return {
    nextInt(maxExclusive: number): number {
      if (!Number.isInteger(maxExclusive) || maxExclusive <= 0) {
        throw new RangeError(`nextInt needs a positive integer bound, got ${maxExclusive}`);
      }
      return Math.floor((next32() / 0x1_0000_0000) * maxExclusive);
    },
  };
}
