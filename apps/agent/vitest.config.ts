import { defineConfig } from "vitest/config";

export default defineConfig({
  // kernel tests share one machine's network stack: run files one at a time
  test: { testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false },
});
