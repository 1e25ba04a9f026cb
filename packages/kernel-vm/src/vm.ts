// Runs a command as root inside Debian's own kernel under qemu, with this
// machine's root filesystem: how vipmesh tests what the machines it is built
// on lack in their kernel (IPVS, ESP). The recipe was checked on these
// machines (docs/ARCHITECTURE.md, "IPVS only in Debian's kernel"):
//
//   - the kernel: Debian's generic linux-image (the -cloud- flavour has no 9p),
//     fetched with `apt-get download`, unpacked, `depmod`-ed, and cached with
//     its initramfs under ~/.cache/vipmesh/kernel-vm/<version>/ between runs;
//   - the initramfs: static busybox, the modules the tests need with their
//     dependencies in load order (each `insmod`-ed, failures ignored:
//     crc32c-intel cannot load under emulation, crc32c_generic serves), and
//     an /init that mounts the host's root read-only over 9p under a tmpfs
//     overlay (writes land in memory and vanish at power-off), fresh /tmp,
//     /run and the shared directories (writable, at their own paths: a
//     checkout under /tmp stays visible), runs the command with `chroot`,
//     prints a marker with its exit status and powers off;
//   - qemu: software emulation (`-accel tcg`: KVM is a device here but does
//     not work), the console on stdio, the command base64-encoded on the
//     kernel command line.
//
// Everything inside runs several times slower than on the host.

import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";

/** Modules loaded at boot (with their dependencies): 9p for the root, IPVS, what the lab and the dataplanes use. */
export const MODULES = [
  "virtio_pci", "9pnet_virtio", "9p", "overlay",
  "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_sh", "ip_vs_mh", "ip_vs_sed", "ip_vs_nq", "ip_vs_dh", "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_fo", "ip_vs_ovf",
  "vxlan", "veth", "bridge", "nf_nat", "nf_tables", "nft_nat", "nft_masq", "nft_ct", "nft_numgen", "nft_fib_ipv4", "nft_reject_ipv4", "nft_chain_nat", "nf_conntrack_netlink",
  "xt_mark", "iptable_mangle", "iptable_nat", "xt_conntrack", "xt_MASQUERADE", "nft_compat",
  // IPsec ESP for encrypted overlays: rfc4106(gcm(aes)) is gcm + ctr + ghash over the built-in aes_generic
  // (no AES-NI under emulation); ESP's IV generators are seqiv/echainiv, which ask for the default RNG
  // (drbg, seeded by jitterentropy_rng): without them every `ip xfrm state add … proto esp` fails
  "esp4", "xfrm_user", "xfrm_algo", "gcm", "ghash_generic", "ctr", "seqiv", "echainiv", "drbg", "jitterentropy_rng",
] as const;

/** Debian packages the harness runs (the kernel itself comes with apt-get download). */
export const HOST_TOOLS: Record<string, string> = {
  "qemu-system-x86_64": "qemu-system-x86",
  busybox: "busybox-static",
  cpio: "cpio",
  depmod: "kmod",
  "dpkg-deb": "dpkg",
};

export class VmUnavailable extends Error {
  override name = "VmUnavailable";
}

export interface VmOptions {
  /** Shell command run as root inside the VM (`/bin/sh -c`). */
  command: string;
  /** Directories of the host shared writable at the same path inside (e.g. a checkout under /tmp). */
  shares?: string[];
  memoryMb?: number;
  cpus?: number;
  /** Whole run, boot to power-off. Default 15 min. */
  timeoutMs?: number;
  /** Where kernels and initramfs are kept; default ~/.cache/vipmesh/kernel-vm. */
  cacheDir?: string;
  /** Called with each chunk of the console as it comes (progress). */
  onOutput?: (chunk: string) => void;
}

export interface VmResult {
  /** The command's exit status; null when the VM ended without saying (crash, timeout). */
  exitCode: number | null;
  /** What the command printed (the console between the harness's markers). */
  output: string;
  /** The whole console, kernel messages included. */
  console: string;
  seconds: number;
}

const START = "VIPMESH-VM-START";
const EXIT = "VIPMESH-VM-EXIT";

/** What is missing to boot a VM here, or undefined. */
export function vmUnavailable(): string | undefined {
  if (process.platform !== "linux" || process.arch !== "x64") return `needs Linux on x86-64, this is ${process.platform}/${process.arch}`;
  const missing = Object.entries(HOST_TOOLS).filter(([cmd]) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0);
  if (missing.length > 0) {
    return `missing ${missing.map(([c]) => c).join(", ")}: apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")} (scripts/bootstrap.sh does)`;
  }
  return undefined;
}

interface Kernel {
  version: string;
  vmlinuz: string;
  initrd: string;
}

const run = (cmd: string, args: string[], cwd?: string): string => {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new VmUnavailable(`${cmd} ${args.join(" ")}: ${(r.stderr || r.stdout || String(r.error ?? `exit status ${r.status}`)).trim()}`);
  return r.stdout;
};

/** Debian's current generic kernel, unpacked and with its initramfs, from the cache or fetched now. */
export function prepareKernel(cacheDir = join(homedir(), ".cache", "vipmesh", "kernel-vm")): Kernel {
  const why = vmUnavailable();
  if (why) throw new VmUnavailable(why);
  const pkg = /Depends: (linux-image-\S+-amd64)/.exec(run("apt-cache", ["depends", "linux-image-amd64"]))?.[1];
  if (!pkg) throw new VmUnavailable("apt-cache knows no linux-image-amd64 package: is this Debian with its main archive?");
  const version = pkg.replace(/^linux-image-/, "");
  const dir = join(cacheDir, version);
  const root = join(dir, "root");
  const vmlinuz = join(root, "boot", `vmlinuz-${version}`);
  if (!existsSync(join(root, "lib", "modules", version, "modules.dep"))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    run("apt-get", ["download", "-q", pkg], dir);
    const deb = readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith(".deb"));
    if (!deb) throw new VmUnavailable(`apt-get download ${pkg} left no .deb in ${dir}`);
    run("dpkg-deb", ["-x", join(dir, deb), root]);
    rmSync(join(dir, deb));
    run("depmod", ["-b", root, version]);
  }
  return { version, vmlinuz, initrd: initramfs(dir, root, version) };
}

function moduleFiles(root: string, version: string): string[] {
  const files: string[] = [];
  for (const m of MODULES) {
    const r = spawnSync("modprobe", ["-d", root, "-S", version, "--show-depends", m], { encoding: "utf8" });
    if (r.status !== 0) throw new VmUnavailable(`kernel ${version} has no module ${m}: ${r.stderr.trim()}`);
    for (const line of r.stdout.split("\n")) {
      const path = /^insmod (\S+)/.exec(line)?.[1];
      if (path && !files.includes(path)) files.push(path);
    }
  }
  return files;
}

const INIT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m 2>/dev/null; done
arg() { sed -n "s/.* $1=\\\\([^ ]*\\\\).*/\\\\1/p" /proc/cmdline | base64 -d; }
mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower || { echo "${EXIT} 125"; poweroff -f; }
mount -t tmpfs -o size=80% tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
i=0
for path in $(arg vmshares); do
  mkdir -p "/newroot$path"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "share$i" "/newroot$path"
  i=$((i + 1))
done
arg vmcmd > /newroot/run/vm-command
echo "${START}"
chroot /newroot /bin/sh -c 'cd / && HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin exec /bin/sh /run/vm-command' </dev/console
echo "${EXIT} $?"
poweroff -f
`;

function initramfs(dir: string, root: string, version: string): string {
  const files = moduleFiles(root, version);
  const key = createHash("sha256").update(INIT).update(files.join("\n")).digest("hex").slice(0, 12);
  const initrd = join(dir, `initrd-${key}.gz`);
  if (existsSync(initrd)) return initrd;
  const build = join(dir, `initrd-build-${process.pid}`);
  rmSync(build, { recursive: true, force: true });
  for (const d of ["bin", "proc", "sys", "dev", "modules"]) mkdirSync(join(build, d), { recursive: true });
  copyFileSync("/bin/busybox", join(build, "bin", "busybox"));
  chmodSync(join(build, "bin", "busybox"), 0o755);
  symlinkSync("busybox", join(build, "bin", "sh"));
  const order = files.map((f, i) => {
    const name = `${String(i).padStart(3, "0")}-${basename(f)}`;
    copyFileSync(f, join(build, "modules", name));
    return name;
  });
  writeFileSync(join(build, "modules", "order"), `${order.join("\n")}\n`);
  writeFileSync(join(build, "init"), INIT, { mode: 0o755 });
  execFileSync("sh", ["-c", `find . | cpio -o -H newc --quiet | gzip -1 > ${JSON.stringify(`${initrd}.tmp`)}`], { cwd: build });
  renameSync(`${initrd}.tmp`, initrd);
  rmSync(build, { recursive: true, force: true });
  return initrd;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** Boots the VM, runs the command, and returns its exit status and output. */
export async function runInVm(o: VmOptions): Promise<VmResult> {
  const kernel = prepareKernel(o.cacheDir);
  const shares = o.shares ?? [];
  for (const s of shares) if (!s.startsWith("/") || /\s/.test(s)) throw new Error(`share ${s}: an absolute path without spaces`);
  const append = [
    "console=ttyS0",
    "quiet",
    "loglevel=1",
    "panic=-1",
    `vmcmd=${b64(o.command)}`,
    `vmshares=${b64(shares.join(" "))}`,
  ].join(" ");
  if (append.length > 2000) throw new Error("the command is too long for the kernel command line: put it in a script in a shared directory");
  const args = [
    "-accel", "tcg",
    "-m", String(o.memoryMb ?? 2048),
    "-smp", String(o.cpus ?? 2),
    "-nographic", "-no-reboot",
    "-kernel", kernel.vmlinuz,
    "-initrd", kernel.initrd,
    "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ...shares.flatMap((path, i) => ["-virtfs", `local,path=${path},mount_tag=share${i},security_model=none,multidevs=remap`]),
    "-append", append,
  ];
  const started = Date.now();
  const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "pipe"] });
  let consoleText = "";
  const onData = (d: Buffer) => {
    const s = d.toString();
    consoleText += s;
    o.onOutput?.(s);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const timer = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 15 * 60_000);
  await new Promise<void>((resolve) => child.on("close", () => resolve()));
  clearTimeout(timer);
  const text = consoleText.replace(/\r\n/g, "\n");
  const start = text.indexOf(`${START}\n`);
  const exit = /\nVIPMESH-VM-EXIT (\d+)\n/.exec(text.slice(Math.max(0, start)));
  const output = start < 0 ? "" : text.slice(start + START.length + 1, exit ? start + exit.index + 1 : undefined);
  return { exitCode: exit ? Number(exit[1]) : null, output, console: text, seconds: (Date.now() - started) / 1000 };
}
