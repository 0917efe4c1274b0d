import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // test/e2e needs a real control plane: npm run e2e (vitest.e2e.config.ts).
    exclude: ['node_modules/**', 'dist/**', 'test/e2e/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
