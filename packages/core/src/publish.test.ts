import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import { parsePublish } from "./publish.ts";
import type { PortConfig } from "./types.ts";

const port = (p: Partial<PortConfig> & Pick<PortConfig, "targetPort">): PortConfig => ({
  protocol: "tcp",
  publishedPort: 0,
  publishMode: "ingress",
  ...p,
});

describe("parsePublish", () => {
  it.each([
    ["80", port({ targetPort: 80 })],
    ["8080:80", port({ targetPort: 80, publishedPort: 8080 })],
    ["8080:80/udp", port({ targetPort: 80, publishedPort: 8080, protocol: "udp" })],
    ["53/sctp", port({ targetPort: 53, protocol: "sctp" })],
    [
      "published=8080,target=80,protocol=sctp,mode=host",
      port({ targetPort: 80, publishedPort: 8080, protocol: "sctp", publishMode: "host" }),
    ],
    ["target=80", port({ targetPort: 80 })],
    ["target=80, published=8081", port({ targetPort: 80, publishedPort: 8081 })],
    ["published=8080,target=80,mode=ingress", port({ targetPort: 80, publishedPort: 8080 })],
    ["published=8080,target=80,proxy-protocol=v2", port({ targetPort: 80, publishedPort: 8080, proxyProtocol: "v2" })],
    ["target=80,proxy-protocol=v1", port({ targetPort: 80, proxyProtocol: "v1" })],
  ])("parses %j", (text, expected) => {
    expect(parsePublish(text)).toEqual(expected);
  });

  it.each([
    { text: "abc", mentions: ['"abc"', "[PUBLISHED:]TARGET"] },
    { text: "8080:", mentions: ['"8080:"'] },
    { text: ":80", mentions: ['":80"'] },
    { text: "8080:80/", mentions: ['"8080:80/"'] },
    { text: "8080:80/icmp", mentions: ['"icmp"'] },
    { text: "published=1,target=x", mentions: ['"x" is not a port number'] },
    { text: "published=http,target=80", mentions: ['"http" is not a port number'] },
    { text: "published=8080,target=80,color=red", mentions: ['unknown field "color"'] },
    { text: "published=8080", mentions: ["target= is required"] },
    { text: "published=8080,target=", mentions: ["target= is required"] },
    { text: "target=80,", mentions: ['"" is not key=value'] },
    { text: "target=80=81", mentions: ['"target=80=81" is not key=value'] },
    { text: "target=80,mode=bridge", mentions: ['"bridge"'] },
    { text: "70000", mentions: ["70000", "1-65535"] },
    { text: "70000:80", mentions: ["70000", "publishedPort"] },
    { text: "published=8080,target=70000", mentions: ["70000", "targetPort"] },
    { text: "0", mentions: ['"0"', "targetPort: 0 "] },
    { text: "target=80,proxy-protocol=v3", mentions: ['"v3"'] },
    { text: "published=8080,target=80,mode=host,proxy-protocol=v1", mentions: ["routing mesh", "host mode keeps"] },
    { text: "target=53,protocol=udp,proxy-protocol=v1", mentions: ["TCP ports"] },
    { text: "target=80,mode=host", mentions: ["mode=host needs a published port"] },
  ])("rejects $text", ({ text, mentions }) => {
    expectVipmeshError(() => parsePublish(text), "invalid_argument", `--publish "${text}"`, ...mentions);
  });
});
