// The config from the template: Handlebars, no HTML escaping (it is not HTML),
// strict (a name the data lacks is an error, not an empty string), with one
// helper, `eq`. A template that fails to compile or render throws a
// TemplateError naming the template.

import Handlebars from "handlebars";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { TemplateData } from "./model.ts";

export const DEFAULT_TEMPLATE = fileURLToPath(new URL("./templates/haproxy.cfg.hbs", import.meta.url));

export class TemplateError extends Error {
  override name = "TemplateError";
}

const handlebars = Handlebars.create();
handlebars.registerHelper("eq", (a: unknown, b: unknown) => a === b);

export type Render = (data: TemplateData) => string;

/** Compiles a template's text; `source` names it in errors. */
export function compileTemplate(text: string, source: string): Render {
  let template: HandlebarsTemplateDelegate<TemplateData>;
  try {
    handlebars.parse(text); // compile() parses lazily, on first use: a syntax error is found now
    template = handlebars.compile<TemplateData>(text, { noEscape: true, strict: true });
  } catch (e) {
    throw new TemplateError(`template ${source}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return (data) => {
    try {
      return template(data);
    } catch (e) {
      throw new TemplateError(`template ${source}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
}

/** Reads and compiles a template file (the default one without `path`). */
export function loadTemplate(path = DEFAULT_TEMPLATE): Render {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new TemplateError(`template ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return compileTemplate(text, path);
}
