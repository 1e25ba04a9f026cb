// vipmesh store key|migrate, as docs/HA.md uses them: a SQLite cluster, its
// manager stopped, copied into an empty etcd; a manager on etcd then serves
// the same cluster (objects, allocations, CA, join tokens); a second
// migration into the now full store is refused. Needs etcd, no root.

import { call, clusterClient, credentialsFromDir } from "@vipmesh/api";
import { startManager } from "@vipmesh/manager";
import { tempDir } from "@vipmesh/testing";
import { etcdDescribe, startTestEtcd, type TestEtcd } from "@vipmesh/testing/etcd";
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli } from "./run-cli.ts";

etcdDescribe("vipmesh store", () => {
  const dir = tempDir("vipmesh-cli-store-");
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await startTestEtcd();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
    dir.remove();
  });

  it("migrate copies a stopped SQLite manager's cluster into etcd, where a manager serves it as it was", async () => {
    const sqliteDir = join(dir.path, "sqlite");
    const before = await startManager({ dataDir: sqliteDir, listen: ["127.0.0.1:0"] });
    const admin = clusterClient(before.addresses[0]!, credentialsFromDir(before.adminTlsDir!));
    await call(admin, "createNetwork", { spec: { name: "appnet" } });
    const { service } = await call(admin, "createService", {
      spec: { annotations: { name: "web" }, taskTemplate: { container: { command: ["vipmesh", "whoami"] } }, networks: [{ target: "appnet" }], replicated: { replicas: 2 } },
    });
    const token = (await call(admin, "getJoinToken", { role: "worker" })).token;
    admin.close();
    await before.stop();

    const key = join(dir.path, "store.key");
    expect(await runCli(["store", "key", "--out", key])).toMatchObject({ code: 0, stderr: "" });
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect((await runCli(["store", "key", "--out", key])).stderr).toMatch(/never overwritten/);

    const migrate = ["store", "migrate", "--data-dir", sqliteDir, "--etcd-endpoints", etcd.endpoint, "--store-key", key];
    const migrated = await runCli(migrate);
    expect(migrated).toMatchObject({ code: 0, stderr: "" });
    expect(migrated.stdout).toMatch(/^migrated version \d+: \d+ objects and \d+ settings/);

    const after = await startManager({ dataDir: join(dir.path, "etcd-manager"), listen: ["127.0.0.1:0"], store: { kind: "etcd", endpoints: [etcd.endpoint], storeKeyFile: key } });
    try {
      // the same CA: the SQLite manager's admin identity is still the cluster's admin
      expect(readFileSync(join(after.adminTlsDir!, "ca.pem"), "utf8")).toBe(readFileSync(join(sqliteDir, "ca", "ca.pem"), "utf8"));
      const client = clusterClient(after.addresses[0]!, credentialsFromDir(before.adminTlsDir!));
      const { services } = await call(client, "listServices", {});
      expect(services.map((s) => [s.id, s.spec?.annotations?.name, s.endpoint?.virtualIps?.map((v) => v.addr)])).toEqual([
        [service!.id, "web", service!.endpoint!.virtualIps!.map((v) => v.addr)],
      ]);
      expect((await call(client, "getJoinToken", { role: "worker" })).token).toBe(token);
      client.close();
    } finally {
      await after.stop();
    }
    const again = await runCli(migrate);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/is not empty/);
  }, 60_000);

  it("migrate refuses a directory with no SQLite store, and a store key others may read", async () => {
    const key = join(dir.path, "other.key");
    expect((await runCli(["store", "key", "--out", key])).code).toBe(0);
    const migrate = (dataDir: string) => runCli(["store", "migrate", "--data-dir", dataDir, "--etcd-endpoints", etcd.endpoint, "--store-key", key]);
    expect((await migrate(join(dir.path, "nothing"))).stderr).toMatch(/holds no SQLite store/);
    const bare = join(dir.path, "bare");
    mkdirSync(bare);
    writeFileSync(join(bare, "vipmesh.db"), "");
    chmodSync(key, 0o644);
    expect((await migrate(bare)).stderr).toMatch(/open to group or others \(mode 644\): chmod 600/);
  });
});
