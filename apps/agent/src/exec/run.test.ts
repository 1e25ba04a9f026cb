import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { KernelBatchError, commandLine, parseBatchStderr, type BatchOutcome } from "./run.ts";

describe("parseBatchStderr", () => {
  it("gives each failed line the messages printed before its 'Command failed'", () => {
    const stderr = ['Cannot find device "nosuch"', "Command failed -:1", "RTNETLINK answers: File exists", "Command failed -:4", ""].join("\n");
    expect(parseBatchStderr(stderr)).toEqual({
      failed: new Map([
        [1, 'Cannot find device "nosuch"'],
        [4, "RTNETLINK answers: File exists"],
      ]),
      trailing: "",
    });
  });

  it("keeps what came after the last failed line: the words of a tool that stopped early", () => {
    const stderr = ["RTNETLINK answers: File exists", "Command failed -:2", "RTNETLINK answers: No such file or directory", ""].join("\n");
    const { failed, trailing } = parseBatchStderr(stderr);
    expect([...failed.keys()]).toEqual([2]);
    expect(trailing).toBe("RTNETLINK answers: No such file or directory");
  });
});

describe("errors", () => {
  it("quote what a shell would need quoted", () => {
    expect(commandLine("ip", ["-n", "vm-x", "link", "set", "dev", "a b", "alias", "it's"])).toBe(`ip -n vm-x link set dev 'a b' alias 'it'\\''s'`);
  });

  it("name every failed line of every batch", () => {
    const outcome: BatchOutcome = {
      command: "ip -n n1 -force -batch -",
      lines: 3,
      failures: [{ lineNo: 2, text: "link set dev vmvx5 master vmbr5 up", message: 'Cannot find device "vmvx5"' }],
      tolerated: [{ lineNo: 1, text: "link del dev vmvx4", message: 'Cannot find device "vmvx4"' }],
      aborted: undefined,
    };
    const ok: BatchOutcome = { command: "bridge -n n1 -force -batch -", lines: 1, failures: [], tolerated: [], aborted: undefined };
    expect(new KernelBatchError([outcome, ok]).message).toBe(
      'ip -n n1 -force -batch -: 1 of 3 lines failed\n  line 2 `link set dev vmvx5 master vmbr5 up`: Cannot find device "vmvx5"',
    );
  });
});

describe("run out of descriptors", () => {
  it("refuses with the reason instead of throwing an 'error' nobody handles (which would end the agent)", () => {
    const script = fileURLToPath(new URL("./testdata/out-of-descriptors.ts", import.meta.url));
    // tsx resolves from this package's folder, as for every script here
    const out = execFileSync("prlimit", ["--nofile=64:64", process.execPath, "--import", "tsx", script], { encoding: "utf8", cwd: fileURLToPath(new URL("../..", import.meta.url)) });
    expect(out.trim()).toMatch(/^refused: .*cannot run: spawn ip EMFILE$/);
  });
});
