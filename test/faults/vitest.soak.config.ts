import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/faults/soak.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 0,
    hookTimeout: 60_000,
  },
});
