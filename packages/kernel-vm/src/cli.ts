// npm run vm -- [--memory MB] [--cpus N] [--share DIR]… [--] COMMAND…
// Runs COMMAND as root in Debian's kernel under qemu (vm.ts), prints what it
// printed, and exits with its status: 125 when no VM can be had here (the
// message says what is missing), 124 when the VM ended without a status.

import { runInVm, VmUnavailable } from "./vm.ts";

const args = process.argv.slice(2);
const shares: string[] = [];
let memoryMb: number | undefined;
let cpus: number | undefined;
while (args.length > 0 && args[0]!.startsWith("--") && args[0] !== "--") {
  const flag = args.shift()!;
  const value = args.shift();
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === "--share") shares.push(value!);
  else if (flag === "--memory") memoryMb = Number(value);
  else if (flag === "--cpus") cpus = Number(value);
  else usage(`unknown option ${flag}`);
}
if (args[0] === "--") args.shift();
if (args.length === 0) usage("no command given");

function usage(why: string): never {
  console.error(`kernel-vm: ${why}\nusage: npm run vm -- [--memory MB] [--cpus N] [--share DIR]… [--] COMMAND…`);
  process.exit(2);
}

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
try {
  const r = await runInVm({
    command: args.map(quote).join(" "),
    shares,
    ...(memoryMb ? { memoryMb } : {}),
    ...(cpus ? { cpus } : {}),
  });
  process.stdout.write(r.output);
  if (r.exitCode === null) {
    console.error(`kernel-vm: the VM ended without the command's status after ${r.seconds.toFixed(0)} s; its console:\n${r.console.slice(-4000)}`);
    process.exit(124);
  }
  console.error(`kernel-vm: exit status ${r.exitCode} after ${r.seconds.toFixed(1)} s`);
  process.exit(r.exitCode);
} catch (e) {
  if (!(e instanceof VmUnavailable)) throw e;
  console.error(`kernel-vm: cannot boot a VM here: ${e.message}`);
  process.exit(125);
}
