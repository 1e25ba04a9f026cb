// Entry point of the `vipmesh` command (bin/vipmesh runs this with tsx).

import { logVerbosity, setLogVerbosity } from "@grpc/grpc-js";
import { processIo } from "./io.ts";
import { run } from "./program.ts";

// grpc-js logs failures the CLI already explains (e.g. "No address added" before
// "cannot listen on ..."); GRPC_VERBOSITY still turns its logs back on.
if (!process.env.GRPC_VERBOSITY) setLogVerbosity(logVerbosity.NONE);

// A reader that went away (`vipmesh service ls | head -1`) is no reason for a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await run(process.argv.slice(2), processIo());
