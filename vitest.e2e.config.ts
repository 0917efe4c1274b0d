import { defineConfig } from 'vitest/config';

// The e2e suite on a real control plane (npm run e2e): one file at a time, since each
// starts its own etcd, kube-apiserver and kube-controller-manager.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/e2e/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
