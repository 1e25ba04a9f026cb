import { defineConfig } from "vitest/config";

export default defineConfig({
  // a lab is a whole cluster: one file at a time on a 2-core machine
  test: { testTimeout: 120_000, hookTimeout: 120_000, fileParallelism: false },
});
