// Run by limits.test.ts under a low soft limit: the limits this process runs with.
import { openFilesLimit } from "../limits.ts";

process.stdout.write(JSON.stringify(openFilesLimit()));
