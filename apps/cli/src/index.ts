export { buildProgram, run } from "./program.ts";
export type { Io, Writer } from "./io.ts";
