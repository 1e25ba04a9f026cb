import { defineConfig } from "vitest/config";

export default defineConfig({
  // containerd tests share one machine: run files one at a time
  test: { testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false },
});
