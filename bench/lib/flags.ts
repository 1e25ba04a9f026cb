// A bench script's command line: each flag with its value (--flag V or --flag=V),
// --help printing `help`; `take` says whether it knew the flag.

export function eachFlag(argv: string[], help: string, take: (flag: string, value: () => string) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split(/=(.*)/s, 2) as [string, string | undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === "--help" || flag === "-h") {
      console.log(help);
      process.exit(0);
    }
    if (!take(flag, value)) throw new Error(`unknown option ${argv[i]}\n${help}`);
  }
}
