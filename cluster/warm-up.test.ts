import { afterEach, describe, expect, it, vi } from 'vitest';
import { warmUpElectionPath } from './warm-up.js';

describe('warmUpElectionPath', () => {
  afterEach(() => vi.restoreAllMocks());

  it('elects and hands over in a throwaway group on fake time, with no real timer', async () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const result = await warmUpElectionPath({ tickMs: 100, electionTicks: 10, heartbeatTicks: 1, maxClockDriftMs: 100, handovers: 3 });
    // The first election and one leader per handover (the last one by shutdown()).
    expect(result.leaderChanges).toBe(4);
    expect(result.messages).toBeGreaterThan(20);
    expect(setTimeoutSpy).not.toHaveBeenCalled();
    expect(setIntervalSpy).not.toHaveBeenCalled();
  });

  it('runs with other timings too (the member passes its own)', async () => {
    for (const t of [
      { tickMs: 10, electionTicks: 3, heartbeatTicks: 1, maxClockDriftMs: 0 },
      { tickMs: 250, electionTicks: 20, heartbeatTicks: 3, maxClockDriftMs: 500 },
      // A randomized election timeout runs to 2 election timeouts: 300 ticks here.
      { tickMs: 10, electionTicks: 150, heartbeatTicks: 1, maxClockDriftMs: 0 },
    ]) {
      const result = await warmUpElectionPath(t);
      expect(result.leaderChanges, JSON.stringify(t)).toBe(5);
    }
  });
});
