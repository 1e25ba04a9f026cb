// vipmesh ca init|issue: the cluster CA for etcd mode, made before any
// manager starts, and the certificates of etcd's members and clients.

import { resolve } from "node:path";
import { type Command, InvalidArgumentError } from "commander";
import { CommandFailed } from "../errors.ts";
import type { Io } from "../io.ts";
import { collect, wholeNumber } from "../options.ts";

interface IssueOptions {
  dir: string;
  name: string;
  ip?: string[];
  dns?: string[];
  usage: "server" | "peer" | "client";
  cn?: string;
  out: string;
  days?: number;
}

const USAGE_HELP = `
Usages:
  server  an etcd member's client port: serverAuth, valid for the --ip/--dns given;
          not with --client-cert-auth, where etcd's gateway dials its own client
          port with it and is refused (a member logs "incompatible key usage")
  peer    an etcd member's client and peer ports (a member dials its peers and
          itself too): serverAuth and clientAuth, valid for the --ip/--dns given
  client  a manager or the admin talking to etcd: clientAuth

Why the CN matters: etcd run with --client-cert-auth trusts every certificate
this CA signed, every node's included. With etcd's auth enabled, it takes a
client certificate's CN as the user, so grant access to the users
vipmesh-manager (the managers) and root (the admin) only: a node's certificate,
whose CN is its node ID, is then denied.

Example:
  vipmesh ca issue --dir /etc/vipmesh/ca --name m1 --usage peer --ip 10.0.0.1 --out /etc/vipmesh/etcd
  vipmesh ca issue --dir /etc/vipmesh/ca --name manager --cn vipmesh-manager --usage client --out /etc/vipmesh/etcd-client
`;

/** The signing code loads @peculiar/x509 (~100 ms): only these commands pay for it. */
const signing = () => import("@vipmesh/pki/signing");

/** The library's refusals (CaError) are the operator's to fix: a message, exit 1. */
async function explained<T>(fn: () => Promise<T>): Promise<T> {
  const { CaError } = await signing();
  try {
    return await fn();
  } catch (err) {
    if (err instanceof CaError) throw new CommandFailed(err.message);
    throw err;
  }
}

export function registerCaCommands(program: Command, io: Io): void {
  const ca = program.command("ca").description("The cluster CA for managers on etcd: make it, and etcd's certificates, before any manager starts");

  ca.command("init")
    .description("Make a new cluster CA in a directory: ca.pem, and ca.key (0600, the cluster's root secret); refuses to replace one")
    .requiredOption("--dir <dir>", "where to write it")
    .action(async (opts: { dir: string }) => {
      const dir = resolve(opts.dir);
      const made = await explained(async () => (await signing()).ClusterCa.create(dir));
      io.stdout(
        `Made the cluster CA ${made.clusterId} in ${dir}:\n` +
          "    ca.pem  its certificate: every etcd member, manager and node trusts it\n" +
          "    ca.key  its key (0600), the cluster's root secret: `ca issue` signs with it, and the first manager imports it into the store (--ca-dir)\n",
      );
    });

  ca.command("issue")
    .description("Issue a certificate from the CA for an etcd member or client, written as OUT/{ca.pem,cert.pem,key.pem} (key 0600)")
    .requiredOption("--dir <dir>", "the CA's directory (from `vipmesh ca init`)")
    .requiredOption("--name <name>", "what it is for: the member's name (m1), or the client's")
    .requiredOption("--usage <usage>", "server, peer or client (below)", usage)
    .option("--ip <addr>", "an address a member serves on (repeatable)", collect)
    .option("--dns <host>", "a host name a member serves on (repeatable)", collect)
    .option("--cn <cn>", "the subject's CN, which etcd takes as a client's user (default the name)")
    .requiredOption("--out <dir>", "where to write ca.pem, cert.pem and key.pem")
    .option("--days <n>", "how long it lasts (default 365); issue it again before then and restart the member", days)
    .addHelpText("after", USAGE_HELP)
    .action(async (opts: IssueOptions) => {
      const out = resolve(opts.out);
      const { issueEtcdCertificate, ETCD_CERT_VALIDITY_MS } = await signing();
      const validityMs = opts.days === undefined ? ETCD_CERT_VALIDITY_MS : opts.days * 24 * 3600_000;
      const req = { name: opts.name, usage: opts.usage, ips: opts.ip, dns: opts.dns, cn: opts.cn };
      const id = await explained(() => issueEtcdCertificate(resolve(opts.dir), req, out, validityMs));
      const { X509Certificate } = await import("node:crypto");
      const cert = new X509Certificate(id.certPem);
      io.stdout(`Issued a ${opts.usage} certificate for ${cert.subject.split("\n")[0]} (${cert.subjectAltName ?? "no addresses"}), valid until ${new Date(cert.validTo).toISOString()}, in ${out}\n`);
    });
}

function usage(value: string): IssueOptions["usage"] {
  if (value !== "server" && value !== "peer" && value !== "client") throw new InvalidArgumentError("expected server, peer or client");
  return value;
}

function days(value: string): number {
  const n = wholeNumber(value);
  if (n === 0) throw new InvalidArgumentError("expected 1 day or more");
  return n;
}
