// The IPsec driver of encrypted overlays: the one place that runs `ip xfrm`
// and loads the guard table (xfrm.ts says what they hold, and why).
//
// sync() first makes sure the kernel has ESP (esp4, loaded if need be: without
// it no SA can be made, so the network must stay down), then that the guard is there for the plan's VNIs (it is what
// keeps an encrypted VNI's packet from ever crossing the underlay in
// plaintext, whatever xfrm holds), then reads the SAs and policies, and writes
// the difference in one `ip -batch` (stdin: keys never show on a command
// line). A converged node costs three reads and no write. xfrm commands end
// the batch at their first netlink error (iproute2's xfrm code exits), so a
// failed or cut-short batch is followed by a fresh read and another pass.
// Only SAs with IPSEC_REQID, out policies whose template has it, and the
// table vipmesh_ipsec are touched. A plan without VNIs removes them all, the
// guard last; one without peers keeps the guard alone.

import { TrustCache } from "../exec/trust.ts";
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import {
  checkIpsecPlan,
  guardProblem,
  IPSEC_TABLE,
  parseXfrmPolicies,
  parseXfrmStates,
  redactSecrets,
  removeGuardScript,
  wantedIpsec,
  xfrmChanges,
  type IpsecWanted,
} from "./xfrm.ts";
import { loadNft } from "../exec/nft.ts";
import { isTolerated, KernelCommandError, run, runBatch, runIn, type BatchOutcome, type KernelOptions } from "../exec/run.ts";
import type { IpsecDriver, IpsecPlan } from "./types.ts";

/** Passes of read, diff, write before a failure is reported. */
const MAX_PASSES = 3;

export interface KernelIpsecOptions extends KernelOptions {
  /** How long a plan just made is trusted without reading the kernel back; 0: never. Default 30 s: drift (an SA deleted by hand) is repaired after. */
  trustMs?: number;
  /** Called before every load of the guard table (the nft script; it holds no key). onWrite gets the xfrm batches, keys redacted. */
  onNftWrite?: (write: { netns: string | undefined; script: string }) => void;
}

export class IpsecGuardError extends Error {
  override name = "IpsecGuardError";
}

export class KernelIpsec implements IpsecDriver {
  /** Set once the kernel was seen to have ESP: a module does not go away. */
  private hasEsp = false;

  private readonly trust: TrustCache;

  constructor(private readonly o: KernelIpsecOptions = {}) {
    this.trust = new TrustCache(o.trustMs ?? 30_000);
  }

  async sync(plan: IpsecPlan): Promise<void> {
    checkIpsecPlan(plan);
    await this.trust.ensure("", JSON.stringify(plan), () => this.converge(plan));
  }

  private async converge(plan: IpsecPlan): Promise<void> {
    const want = wantedIpsec(plan);
    if (want.guard) {
      await this.ensureEsp();
      await this.ensureGuard(want.guard);
    }
    await this.convergeXfrm(want);
    if (!want.guard) await this.removeGuard();
  }

  /** esp4 loaded (or built in), loading it if need be; else an error that keeps the encrypted networks down. */
  private async ensureEsp(): Promise<void> {
    if (this.hasEsp) return;
    if (!espPresent()) await runIn(undefined, ["modprobe", "-q", "esp4"]).catch(() => undefined);
    if (!espPresent()) throw new IpsecGuardError("this kernel has no ESP for IPv4 (module esp4): encrypted networks cannot be carried");
    this.hasEsp = true;
  }

  /** `nft list table ip vipmesh_ipsec`, or undefined when there is no such table. */
  private async readGuard(): Promise<string | undefined> {
    try {
      return await runIn(this.o.netns, ["nft", "list", "table", "ip", IPSEC_TABLE]);
    } catch (e) {
      if (e instanceof KernelCommandError && isTolerated("missing", e.stderr)) return undefined;
      throw e;
    }
  }

  private async ensureGuard(guard: NonNullable<IpsecWanted["guard"]>): Promise<void> {
    const listing = await this.readGuard().catch(() => undefined);
    if (listing !== undefined && guardProblem(listing, guard.hash) === undefined) return;
    this.o.onNftWrite?.({ netns: this.o.netns, script: guard.script });
    try {
      await loadNft(this.o.netns, guard.script);
    } catch (e) {
      throw new IpsecGuardError(`the encrypted overlay guard (nft table ${IPSEC_TABLE}) cannot be loaded: ${(e as Error).message}`);
    }
    const problem = await this.readGuard().then(
      (l) => (l === undefined ? `table ${IPSEC_TABLE} is not there` : guardProblem(l, guard.hash)),
      (e: unknown) => `it cannot be read back: ${(e as Error).message}`,
    );
    if (problem) throw new IpsecGuardError(`the encrypted overlay guard was loaded but ${problem}`);
  }

  private async removeGuard(): Promise<void> {
    if ((await this.readGuard()) === undefined) return;
    const script = removeGuardScript();
    this.o.onNftWrite?.({ netns: this.o.netns, script });
    await loadNft(this.o.netns, script);
  }

  private async convergeXfrm(want: IpsecWanted): Promise<void> {
    const netns = this.o.netns;
    for (let pass = 1; ; pass++) {
      const [states, policies] = await Promise.all([
        run("ip", ["xfrm", "state", "list"], { netns }),
        run("ip", ["xfrm", "policy", "list"], { netns }),
      ]);
      const lines = xfrmChanges(want, parseXfrmStates(states), parseXfrmPolicies(policies));
      if (lines.length === 0) return;
      this.o.onWrite?.({ tool: "ip", netns, lines: lines.map(redactSecrets) });
      const outcome = await runBatch("ip", lines.map((text) => ({ text })), { netns });
      if (outcome.failures.length === 0 && !outcome.aborted) return;
      if (pass >= MAX_PASSES) throw new Error(describe(outcome));
    }
  }
}

function espPresent(): boolean {
  if (existsSync("/sys/module/esp4")) return true;
  try {
    return /\/esp4\.ko$/m.test(readFileSync(`/lib/modules/${release()}/modules.builtin`, "utf8"));
  } catch {
    return false;
  }
}

function describe(o: BatchOutcome): string {
  const parts = o.failures.map((f) => `  line ${f.lineNo} \`${redactSecrets(f.text)}\`: ${f.message || "failed"}`);
  if (o.aborted) parts.push(`  stopped before the end: ${redactSecrets(o.aborted)}`);
  return `encrypted overlay: ${o.command}: xfrm not converged after ${MAX_PASSES} passes\n${parts.join("\n")}`;
}
