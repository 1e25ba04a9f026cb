import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../../test/run-cli.ts";

const dir = mkdtempSync(join(tmpdir(), "vipmesh-ca-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const vipmesh = (...argv: string[]) => runCli(argv);

describe("vipmesh ca", () => {
  const ca = join(dir, "ca");

  it("init makes a CA once, and refuses to replace it", async () => {
    const made = await vipmesh("ca", "init", "--dir", ca);
    expect(made).toMatchObject({ code: 0, stderr: "", stdout: expect.stringMatching(/^Made the cluster CA [0-9a-z]{25} in /) });
    expect(statSync(join(ca, "ca.key")).mode & 0o777).toBe(0o600);
    const again = await vipmesh("ca", "init", "--dir", ca);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`Error: ${join(ca, "ca.pem")} and ${join(ca, "ca.key")} already exist: a new CA there would orphan every certificate the old one signed; remove ${ca} first if that is what you want\n`);
  });

  it("issue writes a member's certificate for its addresses, which openssl verifies", async () => {
    const out = join(dir, "m1");
    const r = await vipmesh("ca", "issue", "--dir", ca, "--name", "m1", "--usage", "peer", "--ip", "10.9.0.1", "--ip", "127.0.0.1", "--dns", "m1", "--out", out);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^Issued a peer certificate for CN=m1 \(IP Address:10\.9\.0\.1, IP Address:127\.0\.0\.1, DNS:m1\), valid until \S+, in /);
    expect(statSync(join(out, "key.pem")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, "ca.pem"), "utf8")).toBe(readFileSync(join(ca, "ca.pem"), "utf8"));
    const verified = execFileSync("openssl", ["verify", "-purpose", "sslserver", "-CAfile", join(out, "ca.pem"), join(out, "cert.pem")], { encoding: "utf8" });
    expect(verified).toBe(`${join(out, "cert.pem")}: OK\n`);
  });

  it("issue writes a client's certificate with the CN given, for --days", async () => {
    const out = join(dir, "client");
    const r = await vipmesh("ca", "issue", "--dir", ca, "--name", "manager", "--cn", "vipmesh-manager", "--usage", "client", "--days", "30", "--out", out);
    expect(r).toMatchObject({ code: 0, stderr: "", stdout: expect.stringContaining("client certificate for CN=vipmesh-manager (no addresses)") });
    const cert = new X509Certificate(readFileSync(join(out, "cert.pem")));
    expect(Math.round((Date.parse(cert.validTo) - Date.now()) / (24 * 3600_000))).toBe(30);
  });

  it("a bad request is the operator's to fix: the reason, exit 1 or 2", async () => {
    const out = join(dir, "bad");
    expect(await vipmesh("ca", "issue", "--dir", ca, "--name", "m1", "--usage", "server", "--out", out)).toEqual({
      code: 1,
      stdout: "",
      stderr: "Error: a server certificate needs the addresses it serves on (--ip, --dns): clients check the one they dialled\n",
    });
    const noCa = await vipmesh("ca", "issue", "--dir", join(dir, "none"), "--name", "x", "--usage", "client", "--out", out);
    expect(noCa).toMatchObject({ code: 1, stderr: expect.stringContaining("holds no cluster CA (ca.pem and ca.key): make one with `vipmesh ca init --dir") });
    const usage = await vipmesh("ca", "issue", "--dir", ca, "--name", "x", "--usage", "both", "--out", out);
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringContaining("expected server, peer or client") });
  });

  it("issue's help says why the CN matters", async () => {
    const help = await vipmesh("ca", "issue", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Why the CN matters");
    expect(help.stdout).toContain("a node's certificate,\nwhose CN is its node ID, is then denied");
  });
});
