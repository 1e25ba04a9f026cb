// Docker's two --publish forms:
//   [PUBLISHED:]TARGET[/PROTOCOL]
//   published=P,target=T[,protocol=tcp|udp|sctp][,mode=ingress|host][,proxy-protocol=v1|v2]

import { invalid } from "./errors.ts";
import type { PortConfig } from "./types.ts";
import { normalizePort } from "./validation.ts";

export function parsePublish(text: string): PortConfig {
  if (text.includes("=")) {
    const fields: Record<string, string> = {};
    for (const part of text.split(",")) {
      const [k, v, ...rest] = part.split("=");
      if (!k || v === undefined || rest.length > 0) throw invalid(`--publish "${text}": "${part}" is not key=value`);
      fields[k.trim()] = v.trim();
    }
    const known = new Set(["published", "target", "protocol", "mode", "proxy-protocol"]);
    for (const k of Object.keys(fields)) {
      if (!known.has(k)) throw invalid(`--publish "${text}": unknown field "${k}" (use published, target, protocol, mode, proxy-protocol)`);
    }
    if (!fields.target) throw invalid(`--publish "${text}": target= is required`);
    return normalizePort(
      {
        targetPort: number(text, fields.target),
        publishedPort: fields.published ? number(text, fields.published) : 0,
        protocol: fields.protocol,
        publishMode: fields.mode,
        proxyProtocol: fields["proxy-protocol"],
      },
      `--publish "${text}"`,
    );
  }
  const m = /^(?:(\d+):)?(\d+)(?:\/(\w+))?$/.exec(text);
  if (!m) throw invalid(`--publish "${text}" is not [PUBLISHED:]TARGET[/PROTOCOL] nor published=P,target=T`);
  return normalizePort(
    { publishedPort: m[1] ? Number(m[1]) : 0, targetPort: Number(m[2]), protocol: m[3] },
    `--publish "${text}"`,
  );
}

function number(text: string, v: string): number {
  if (!/^\d+$/.test(v)) throw invalid(`--publish "${text}": "${v}" is not a port number`);
  return Number(v);
}
