// The embedded DNS's answers: one query packet and one sandbox's records in,
// one reply packet out. Pure (the shuffle's randomness can be passed in), so
// every rule here is tested with real encoded packets and no socket.
//
// Rules, in order:
//   - unreadable header (< 12 bytes) or a packet that is itself a response: no reply (drop)
//   - readable header but undecodable body, or not exactly one question: FORMERR
//   - opcode other than QUERY: NOTIMP;  class other than IN (or ANY): REFUSED
//   - A (or ANY) for a known name: its addresses (dnsrr and tasks.* shuffled)
//   - PTR for a known reverse name: its task or service name
//   - any other type for a known name: NOERROR with no answers (e.g. AAAA: the overlay is IPv4)
//   - an unknown name the cluster owns (isClusterDnsName: single labels, tasks.<x>, task-ID names,
//     reverse names in the asker's subnets): NXDOMAIN
//   - any other unknown name: forwarded when there are upstream resolvers, else SERVFAIL at once
// UDP replies larger than 512 bytes (or the EDNS size the asker offered) keep
// as many answers as fit and set TC, so the asker retries over TCP.

import * as dns from "dns-packet";
import { type DnsRecords, isClusterDnsName, lookupDnsAddresses, lookupDnsPtr } from "@vipmesh/core";

/**
 * 2 s: short enough that a task leaving (unhealthy, drained, gone) leaves its
 * askers' caches about as fast as the agent's own sync removes it, which is
 * the point of health-driven DNS; long enough that a burst of lookups by one
 * process is one query. The server is in-process and local, so short costs little.
 */
export const DEFAULT_DNS_TTL_S = 2;

/** RFC 1035's UDP limit for an asker that offers no EDNS size. */
export const CLASSIC_UDP_SIZE = 512;
/** The most a UDP answer of ours will be, whatever size the asker offers (the DNS flag day 2020 figure). */
export const MAX_UDP_SIZE = 1232;
/** A TCP message's length prefix is 16 bits. */
const MAX_TCP_SIZE = 65535;

export interface AnswerOptions {
  /** The query came over TCP: no size limit but the protocol's. */
  tcp: boolean;
  /** Seconds; default DEFAULT_DNS_TTL_S. */
  ttl?: number;
  /** There are upstream resolvers to forward foreign names to. */
  upstream?: boolean;
  /** For the dnsrr shuffle; default Math.random. */
  random?: () => number;
}

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

const OPCODE_QUERY = 0;

/**
 * What to do with a query: send `reply`, or forward it upstream. Undefined:
 * drop it. A reply may be replayed to the same query bytes (replay.c) until
 * the records change, except when `noReplay` says it holds a random choice or
 * answers junk; a replay shuffles the 4-byte addresses at `shuffleAt` (dnsrr
 * and tasks.*).
 */
export type DnsResponse = { reply: Buffer; shuffleAt?: number[]; noReplay?: true } | { forward: true } | undefined;

/** The reply to one query, SERVFAIL standing in for forwarding (see respond() for servers with upstreams). */
export function answer(query: Buffer, records: DnsRecords, options: AnswerOptions): Buffer | undefined {
  const r = respond(query, records, { ...options, upstream: false });
  return r && "reply" in r ? r.reply : undefined;
}

export function respond(query: Buffer, records: DnsRecords, options: AnswerOptions): DnsResponse {
  if (query.length < 12) return undefined;
  const id = query.readUInt16BE(0);
  const flags = query.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query: answering could start a loop
  const opcode = (flags >> 11) & 0xf;
  const rd = flags & dns.RECURSION_DESIRED;

  let packet: dns.DecodedPacket;
  try {
    packet = dns.decode(query);
  } catch {
    return { reply: bare(id, opcode, rd, RCODE.FORMERR), noReplay: true };
  }
  // junk is answered, not kept: keeping it would only let a sandbox fill the replays with it
  if (opcode !== OPCODE_QUERY) return { reply: bare(id, opcode, rd, RCODE.NOTIMP), noReplay: true };
  const questions = packet.questions ?? [];
  const question = questions[0];
  if (questions.length !== 1 || !question) return { reply: bare(id, opcode, rd, RCODE.FORMERR), noReplay: true };

  const opt = (packet.additionals ?? []).find((a): a is dns.OptAnswer => a.type === "OPT");
  const limit = options.tcp
    ? MAX_TCP_SIZE
    : Math.min(MAX_UDP_SIZE, Math.max(CLASSIC_UDP_SIZE, opt?.udpPayloadSize ?? CLASSIC_UDP_SIZE));
  const ttl = options.ttl ?? DEFAULT_DNS_TTL_S;
  const baseFlags = rd | dns.AUTHORITATIVE_ANSWER | (options.upstream ? dns.RECURSION_AVAILABLE : 0);
  const reply = (rcode: number, answers: dns.Answer[] = [], shuffled = false): DnsResponse => {
    const out = encodeFitting({ id, flags: baseFlags | rcode, question, answers, opt, limit });
    if (!shuffled) return { reply: out };
    const shuffleAt = addressOffsets(out, question, answers as dns.StringAnswer[]);
    return shuffleAt ? { reply: out, shuffleAt } : { reply: out, noReplay: true };
  };

  const qclass = question.class ?? "IN";
  if (qclass !== "IN" && qclass !== "ANY") return reply(RCODE.REFUSED);

  const name = question.name;
  const type = question.type;
  const ptr = lookupDnsPtr(records, name);
  if (ptr !== undefined) {
    return reply(RCODE.NOERROR, type === "PTR" || (type as string) === "ANY" ? [{ type: "PTR", name, ttl, data: ptr }] : []);
  }
  const found = lookupDnsAddresses(records, name);
  if (found) {
    if (type !== "A" && (type as string) !== "ANY") return reply(RCODE.NOERROR);
    const shuffle = found.shuffle && found.addrs.length > 1;
    const addrs = shuffle ? shuffled(found.addrs, options.random ?? Math.random) : found.addrs;
    return reply(
      RCODE.NOERROR,
      addrs.map((data) => ({ type: "A", name, ttl, data })),
      shuffle,
    );
  }
  if (isClusterDnsName(records, name)) return reply(RCODE.NXDOMAIN);
  if (options.upstream) return { forward: true };
  return reply(RCODE.SERVFAIL);
}

/**
 * Where the addresses of a reply's A answers are, for replays to shuffle:
 * every answer has the same name, so the same length. Undefined when the
 * reply does not hold all of them where expected (it was truncated to what
 * fits: which ones fit is itself the random choice, so it is not replayed).
 */
function addressOffsets(reply: Buffer, question: dns.Question, answers: dns.StringAnswer[]): number[] | undefined {
  if ((reply.readUInt16BE(2) & dns.TRUNCATED_RESPONSE) !== 0 || reply.readUInt16BE(6) !== answers.length) return undefined;
  const head = dns.encodingLength({ type: "response", questions: [question] });
  const each = dns.encodingLength({ type: "response", questions: [question], answers: answers.slice(0, 1) }) - head;
  const at = answers.map((_, i) => head + (i + 1) * each - 4);
  // a check that costs nothing next to encoding: a replay writes only where the addresses are
  return at.every((o, i) => o + 4 <= reply.length && reply.subarray(o, o + 4).join(".") === answers[i]!.data) ? at : undefined;
}

/** SERVFAIL for a query, e.g. when forwarding it failed; undefined when the query is unreadable. */
export function servfail(query: Buffer): Buffer | undefined {
  if (query.length < 12) return undefined;
  const flags = query.readUInt16BE(2);
  try {
    const packet = dns.decode(query);
    const question = packet.questions?.[0];
    if (question) {
      const f = (flags & dns.RECURSION_DESIRED) | dns.RECURSION_AVAILABLE | RCODE.SERVFAIL;
      return dns.encode({ type: "response", id: packet.id ?? 0, flags: f, questions: [question] });
    }
  } catch {
    // fall through to a bare header
  }
  return bare(query.readUInt16BE(0), (flags >> 11) & 0xf, flags & dns.RECURSION_DESIRED, RCODE.SERVFAIL);
}

/** A reply with no sections: what can be said to a query whose body cannot be read. */
function bare(id: number, opcode: number, rd: number, rcode: number): Buffer {
  return dns.encode({ type: "response", id, flags: (opcode << 11) | rd | rcode, questions: [] });
}

interface Draft {
  id: number;
  flags: number;
  question: dns.Question;
  answers: dns.Answer[];
  opt: dns.OptAnswer | undefined;
  limit: number;
}

/** Encodes the reply; over the limit, drops answers from the end until it fits and sets TC. */
function encodeFitting(d: Draft): Buffer {
  // RFC 6891: an asker that sent OPT gets OPT back, with our own size
  const additionals: dns.Answer[] = d.opt
    ? [{ type: "OPT", name: ".", udpPayloadSize: MAX_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
    : [];
  const packet = (answers: dns.Answer[], flags: number): dns.Packet => ({
    type: "response",
    id: d.id,
    flags,
    questions: [d.question],
    answers,
    additionals,
  });
  try {
    if (dns.encodingLength(packet(d.answers, d.flags)) <= d.limit) return dns.encode(packet(d.answers, d.flags));
    // the most answers that fit: binary search, as a dnsrr service may have hundreds of tasks
    let lo = 0;
    let hi = d.answers.length - 1;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (dns.encodingLength(packet(d.answers.slice(0, mid), d.flags)) <= d.limit) lo = mid;
      else hi = mid - 1;
    }
    return dns.encode(packet(d.answers.slice(0, lo), d.flags | dns.TRUNCATED_RESPONSE));
  } catch {
    // a question the library decoded but cannot encode again (a name too long once escaped, say)
    return bare(d.id, OPCODE_QUERY, d.flags & dns.RECURSION_DESIRED, RCODE.FORMERR);
  }
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
