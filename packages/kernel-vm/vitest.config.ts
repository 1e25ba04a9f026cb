import { defineConfig } from "vitest/config";

export default defineConfig({
  // a VM boot under emulation: one at a time, and patiently
  test: { testTimeout: 600_000, hookTimeout: 120_000, fileParallelism: false },
});
