import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { cpus, ramBytes, rate, restartPolicyFrom } from "./options.ts";

describe("--limit-cpu", () => {
  it.each([
    ["0.5", 500_000_000],
    [".25", 250_000_000],
    ["2", 2_000_000_000],
    ["1.", 1_000_000_000],
    ["0.01", 10_000_000],
    ["0.000000001", 1],
    ["1.100000000", 1_100_000_000],
    ["0", 0],
  ])("reads %s CPUs as %i nano CPUs, exactly", (text, nano) => {
    expect(cpus(text)).toBe(nano);
  });

  it.each(["", ".", "-1", "1,5", "half", "0.0000000001", "1e9"])("refuses %j", (text) => {
    expect(() => cpus(text)).toThrow(InvalidArgumentError);
  });
});

describe("--limit-memory", () => {
  it.each([
    ["1048576", 1048576],
    ["100b", 100],
    ["512k", 512 * 1024],
    ["512m", 512 * 1024 ** 2],
    ["512M", 512 * 1024 ** 2],
    ["64MiB", 64 * 1024 ** 2],
    ["1gb", 1024 ** 3],
    ["1.5g", 1.5 * 1024 ** 3],
    ["1 g", 1024 ** 3],
    ["1t", 1024 ** 4],
    ["0", 0],
  ])("reads %s as %i bytes (binary multiples, as Docker)", (text, bytes) => {
    expect(ramBytes(text)).toBe(bytes);
  });

  it.each(["", "m", "-1m", "1x", "1ib", "1.g", "one gig", "1mm"])("refuses %j", (text) => {
    expect(() => ramBytes(text)).toThrow(InvalidArgumentError);
  });
});

describe("--join-rate", () => {
  it.each([
    ["10/1m", { count: 10, windowMs: 60_000 }],
    ["1000/1s", { count: 1000, windowMs: 1000 }],
    ["3/1h30m", { count: 3, windowMs: 5_400_000 }],
  ])("%s", (text, expected) => {
    expect(rate(text)).toEqual(expected);
  });

  it.each(["10", "0/1m", "-1/1m", "x/1m", "10/", "10/0", "10/1", "10/m"])("refuses %j", (text) => {
    expect(() => rate(text)).toThrow(InvalidArgumentError);
  });
});

describe("--restart-*", () => {
  it("gives only the fields whose flags were given", () => {
    expect(restartPolicyFrom({})).toEqual({});
    expect(restartPolicyFrom({ restartDelay: 2000 })).toEqual({ delayMs: 2000 });
    expect(restartPolicyFrom({ restartCondition: "none", restartMaxAttempts: 0, restartWindow: 0 })).toEqual({ condition: "none", maxAttempts: 0, windowMs: 0 });
  });
});
