export { Generator, type GeneratorOptions, type GeneratorStatus } from "./generator.ts";
export { ConfigApplier, ConfigError, runtimeCommands, socketCommand, validateConfig } from "./haproxy.ts";
export { type ClusterSnapshot, type RuntimeSettings, type TemplateData, templateData } from "./model.ts";
export { compileTemplate, DEFAULT_TEMPLATE, loadTemplate, TemplateError } from "./render.ts";
