// Commander argument parsers. A bad value is a usage error (exit 2), reported
// by commander with the flag's name.

import { type Command, InvalidArgumentError, Option } from "commander";
import { FAILURE_ACTIONS, RESTART_CONDITIONS, type RestartPolicy, UPDATE_ORDERS, type UpdateConfig } from "@vipmesh/core";
import { DEFAULT_CONVERGENCE_TIMEOUT_MS } from "./convergence.ts";
import { formatDuration, parseDuration } from "./duration.ts";

// Repeatable flags start out undefined rather than with a default, which
// commander would print in the help as "(default: [])".

/** For repeatable flags: `--network a --network b` → ["a", "b"]. */
export const collect = (value: string, previous: readonly string[] = []): string[] => [...previous, value];

/** For repeatable KEY=VALUE flags; `KEY` alone means an empty value, as in docker. */
export function collectKeyValue(
  value: string,
  previous: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const eq = value.indexOf("=");
  const key = eq === -1 ? value : value.slice(0, eq);
  if (key === "") throw new InvalidArgumentError("expected KEY=VALUE");
  return { ...previous, [key]: eq === -1 ? "" : value.slice(eq + 1) };
}

export function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

/** --tail: a number of lines, or "all" (0 on the wire). 0 itself is refused rather than read as "all". */
export function tailLines(value: string): number {
  if (value === "all") return 0;
  if (!/^\d+$/.test(value) || Number(value) === 0) throw new InvalidArgumentError('expected a number of lines (1 or more) or "all"');
  return Number(value);
}

export function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** `--join-rate`: N/DURATION, at most N events in any DURATION (10/1m). */
export function rate(value: string): { count: number; windowMs: number } {
  const slash = value.indexOf("/");
  const count = value.slice(0, slash);
  if (slash === -1 || !/^[1-9]\d*$/.test(count)) throw new InvalidArgumentError("expected N/DURATION, e.g. 10/1m: at most N in any DURATION");
  const windowMs = duration(value.slice(slash + 1));
  if (windowMs <= 0) throw new InvalidArgumentError("the DURATION of N/DURATION must be more than 0");
  return { count: Number(count), windowMs };
}

/** Whole seconds: a number (10800), or a duration that is one (3h). */
export function seconds(value: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const ms = duration(value);
  if (ms % 1000 !== 0) throw new InvalidArgumentError(`"${value}" is not a whole number of seconds`);
  return ms / 1000;
}

/** `--limit-cpu`: decimal CPUs (0.5, 2, .25) as nano CPUs, Docker's unit; exact, no float rounding. */
export function cpus(value: string): number {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(value);
  if (!m || (m[1] === "" && !m[2])) throw new InvalidArgumentError("expected a number of CPUs, e.g. 0.5 or 2");
  const fraction = (m[2] ?? "").replace(/0+$/, "");
  if (fraction.length > 9) throw new InvalidArgumentError("CPUs are counted to 9 decimal places at most");
  return Number(m[1] || "0") * 1e9 + Number(fraction.padEnd(9, "0"));
}

const RAM_UNITS = { "": 0, k: 1, m: 2, g: 3, t: 4, p: 5 } as const;

/** `--limit-memory`: Docker's RAM syntax (go-units' RAMInBytes): 512m, 1.5g, 64MiB, 1048576 — binary multiples. */
export function ramBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?(i?b)?$/i.exec(value);
  if (!m || (m[3] && !m[2] && m[3].toLowerCase() !== "b")) {
    throw new InvalidArgumentError("expected a size like 512m, 1g or 1048576 (bytes), with b, k, m, g, t or p");
  }
  const unit = (m[2]?.toLowerCase() ?? "") as keyof typeof RAM_UNITS;
  return Math.trunc(Number(m[1]) * 1024 ** RAM_UNITS[unit]);
}

export const choice = (flags: string, description: string, choices: readonly string[]): Option =>
  new Option(flags, description).choices(choices);

// ---- flags shared by service create and update -------------------------------

/** --update-* and --rollback-* flags, as commander names them (e.g. updateParallelism). */
export type UpdateConfigOptions = Partial<Record<string, unknown>>;

/** Adds docker's --update-* (or --rollback-*) flags: how tasks are replaced by an update (or a rollback). */
export function addUpdateConfigOptions(cmd: Command, kind: "update" | "rollback"): Command {
  const replacing = kind === "update" ? "updating" : "rolling back";
  return cmd
    .option(`--${kind}-parallelism <n>`, `tasks replaced at a time when ${replacing} (0 = all at once)`, wholeNumber)
    .option(`--${kind}-delay <duration>`, `wait between batches when ${replacing}, e.g. 10s`, duration)
    .addOption(choice(`--${kind}-failure-action <action>`, `what to do when a new task fails while ${replacing}`, FAILURE_ACTIONS))
    .option(`--${kind}-monitor <duration>`, `how long a new task must keep running to count, when ${replacing}`, duration)
    .addOption(choice(`--${kind}-order <order>`, `when ${replacing}: stop the old task first, or start the new one first`, UPDATE_ORDERS));
}

export function updateConfigFrom(o: UpdateConfigOptions, kind: "update" | "rollback"): Partial<UpdateConfig> {
  const fields: [keyof UpdateConfig, string][] = [
    ["parallelism", "Parallelism"],
    ["delayMs", "Delay"],
    ["failureAction", "FailureAction"],
    ["monitorMs", "Monitor"],
    ["order", "Order"],
  ];
  const out: Record<string, unknown> = {};
  for (const [field, flag] of fields) {
    const value = o[`${kind}${flag}`];
    if (value !== undefined) out[field] = value;
  }
  return out as Partial<UpdateConfig>;
}

/** --restart-* flags, as commander names them. */
export interface RestartPolicyOptions {
  restartCondition?: RestartPolicy["condition"];
  restartDelay?: number;
  restartMaxAttempts?: number;
  restartWindow?: number;
}

/** Adds docker's --restart-* flags: when an ended task's slot gets a new task (the same on create and update). */
export function addRestartPolicyOptions(cmd: Command): Command {
  return cmd
    .addOption(choice("--restart-condition <condition>", 'restart a task that ended: never, after a failure, or always (default "any")', RESTART_CONDITIONS))
    .option("--restart-delay <duration>", "wait this long after a task ended before its new one starts (default 5s)", duration)
    .option("--restart-max-attempts <n>", "restarts of a slot at most, within --restart-window if set (default 0: unlimited)", wholeNumber)
    .option("--restart-window <duration>", "the time --restart-max-attempts counts over (default 0: no window, every restart counts)", duration);
}

/** The restart policy's fields the flags give; on update, the others stay as they are. */
export function restartPolicyFrom(o: RestartPolicyOptions): Partial<RestartPolicy> {
  return {
    ...(o.restartCondition !== undefined ? { condition: o.restartCondition } : {}),
    ...(o.restartDelay !== undefined ? { delayMs: o.restartDelay } : {}),
    ...(o.restartMaxAttempts !== undefined ? { maxAttempts: o.restartMaxAttempts } : {}),
    ...(o.restartWindow !== undefined ? { windowMs: o.restartWindow } : {}),
  };
}

export interface WaitOptions {
  detach?: boolean;
  timeout: number;
}

export function addWaitOptions(cmd: Command): Command {
  return cmd
    .option("-d, --detach", "return at once instead of waiting for the service to converge")
    .addOption(
      new Option("--timeout <duration>", "give up waiting for convergence after this long")
        .argParser(duration)
        .default(DEFAULT_CONVERGENCE_TIMEOUT_MS, formatDuration(DEFAULT_CONVERGENCE_TIMEOUT_MS)),
    );
}

/** A command given after `--` may still carry it, depending on where options stood: drop it. */
export const withoutSeparator = (command: string[]): string[] => (command[0] === "--" ? command.slice(1) : command);
