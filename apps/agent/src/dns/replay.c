// The embedded DNS's UDP path, in C: a Node-API addon loaded by the agent
// (replay.ts), so the one agent process still serves every sandbox.
//
// Why: Node's dgram costs ~5 µs per datagram on this hardware whatever the
// answer costs, which caps a single-threaded Node server below dnsmasq. Here
// one thread of the agent waits on every sandbox's UDP socket (epoll) and
// reads and answers in batches (recvmmsg/sendmmsg).
//
// What it knows of DNS: nothing. It replays replies, as PowerDNS's packet
// cache does: a reply the JavaScript side (answer.ts, dns-packet) computed for
// a query is kept under the query's bytes after its ID, and the next query
// with the same bytes gets a copy with its own ID. A query seen for the first
// time (or one whose answer may not be replayed: forwarded names) goes to
// JavaScript through a thread-safe function, which answers with send(). The
// agent calls forget() whenever a sandbox's records change, so nothing stale
// is replayed. A reply whose addresses are shuffled (dnsrr, tasks.<service>)
// comes with the offsets of those addresses, and each replay shuffles them.
//
// A sandbox is not trusted: its queries are hashed with a secret key
// (SipHash-1-3), so it cannot aim them at one bucket; what it makes us keep
// is bounded in bytes per sandbox (past the bound, its replies are dropped
// and kept afresh); and it can have one batch of queries waiting for
// JavaScript at a time, so it cannot crowd out the others' first queries.
//
// Only datagrams from 127/8 (the sandbox's own loopback) are answered; the
// rest are dropped here, as answer.ts's fromInsideSandbox says.
//
// Sockets: openSockets() makes the UDP socket and the TCP listener inside a
// namespace, from a short-lived thread that enters it (setns on a thread
// changes only that thread's network namespace; a socket keeps the namespace
// it was made in). The TCP listener goes to Node (net.Server), the UDP socket
// to add().

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64          /* datagrams per recvmmsg/sendmmsg */
#define ROUNDS 4          /* batches per socket per wake-up, so that one busy sandbox cannot starve the others */
#define MAX_QUERY 4096    /* a longer UDP query is junk: dropped */
#define MAX_KEY 512       /* longer queries are answered, not kept */
#define MAX_REPLY 4096    /* longer replies are sent, not kept (ours are at most 1232 bytes over UDP) */
#define MAX_SHUFFLE 512   /* addresses a kept reply may shuffle */
#define MAX_BUDGET (1u << 30)
#define INDEX_BITS 20
#define WAKE_ID UINT64_MAX

typedef struct entry {
  uint32_t key_len, reply_len, n_shuffle;
  uint16_t *shuffle; /* offsets of 4-byte addresses in reply */
  uint8_t *key;      /* the query after its ID */
  uint8_t *reply;
} entry;

typedef struct bucket {
  uint64_t hash;
  entry *e; /* NULL: empty */
} bucket;

typedef struct slot {
  int fd; /* -1: free */
  uint32_t gen;
  bucket *table; /* open addressing, linear probing, at most half full; cap a power of two */
  uint32_t cap, count;
  size_t bytes; /* what its replies take, counted against the budget */
} slot;

typedef struct server server;

/* A query for JavaScript. */
typedef struct asked {
  uint32_t addr; /* network order */
  uint16_t port; /* network order */
  uint16_t len;
  uint32_t at; /* of its bytes, after the batch's queries */
} asked;

/* The queries one wake-up of one socket had no reply for, handed to JavaScript at once. */
typedef struct batch {
  server *s;
  uint64_t id;
  uint32_t count;
  asked q[]; /* then their bytes */
} batch;

struct server {
  pthread_mutex_t mu; /* the slots and counters, between this thread and Node's */
  pthread_t thread;
  int ep, wake;
  int stopping;
  napi_threadsafe_function on_miss;
  slot *slots;
  uint32_t n_slots;
  size_t budget; /* bytes of replies kept per slot */
  uint64_t key[2]; /* SipHash key */
  double hits, misses, dropped;
  uint64_t rng;
  /* the thread's own */
  struct mmsghdr in_hdr[BATCH], out_hdr[BATCH];
  struct iovec in_iov[BATCH], out_iov[BATCH];
  struct sockaddr_in in_addr[BATCH];
  uint8_t in_buf[BATCH][MAX_QUERY];
  uint8_t out_buf[BATCH][MAX_REPLY];
  asked stage[ROUNDS * BATCH];
  uint32_t staged, staged_bytes;
  uint8_t stage_bytes[ROUNDS * BATCH * MAX_QUERY];
};

/* ---------- replies kept per slot ---------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                     \
  do {                                                               \
    v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);        \
    v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                           \
    v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                           \
    v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);        \
  } while (0)

/* SipHash-1-3 (as Rust's HashMap): keyed, so a sandbox cannot choose colliding queries. */
static uint64_t siphash13(const uint64_t key[2], const uint8_t *p, size_t n) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
  uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
  uint64_t b = (uint64_t)n << 56, m;
  const uint8_t *end = p + (n & ~(size_t)7);
  for (; p != end; p += 8) {
    memcpy(&m, p, 8); /* little-endian hosts: Linux on x86-64 and arm64 */
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  for (size_t i = 0; i < (n & 7); i++) b |= (uint64_t)p[i] << (8 * i);
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

/* The bucket holding `key`, or the empty one where it would go. */
static bucket *probe(const slot *sl, uint64_t h, const uint8_t *key, uint32_t len) {
  for (uint32_t i = (uint32_t)h & (sl->cap - 1);; i = (i + 1) & (sl->cap - 1)) {
    bucket *b = &sl->table[i];
    if (!b->e || (b->hash == h && b->e->key_len == len && memcmp(b->e->key, key, len) == 0)) return b;
  }
}

static entry *lookup(const slot *sl, uint64_t h, const uint8_t *key, uint32_t len) {
  return sl->cap ? probe(sl, h, key, len)->e : NULL;
}

static void forget_all(slot *sl) {
  for (uint32_t i = 0; i < sl->cap; i++) free(sl->table[i].e);
  free(sl->table);
  sl->table = NULL;
  sl->cap = sl->count = 0;
  sl->bytes = 0;
}

/* What an entry costs: itself, the allocator's overhead, and two buckets (the table is at most half full). */
static size_t entry_cost(uint32_t key_len, uint32_t reply_len, uint32_t n_shuffle) {
  return sizeof(entry) + 16 + key_len + reply_len + n_shuffle * sizeof(uint16_t) + 2 * sizeof(bucket);
}

/* Keeps `reply` for `key`; past the budget, the slot starts afresh. */
static void keep(server *s, slot *sl, const uint8_t *key, uint32_t key_len, const uint8_t *reply, uint32_t reply_len,
                 const uint16_t *shuffle, uint32_t n_shuffle) {
  size_t cost = entry_cost(key_len, reply_len, n_shuffle);
  if (cost > s->budget) return;
  entry *e = malloc(sizeof *e + n_shuffle * sizeof(uint16_t) + key_len + reply_len);
  if (!e) return;
  *e = (entry){.key_len = key_len, .reply_len = reply_len, .n_shuffle = n_shuffle};
  e->shuffle = (uint16_t *)(e + 1);
  e->key = (uint8_t *)(e->shuffle + n_shuffle);
  e->reply = e->key + key_len;
  memcpy(e->shuffle, shuffle, n_shuffle * sizeof(uint16_t));
  memcpy(e->key, key, key_len);
  memcpy(e->reply, reply, reply_len);
  uint64_t h = siphash13(s->key, key, key_len);
  bucket *b = sl->cap ? probe(sl, h, key, key_len) : NULL;
  if (b && b->e) { /* asked again before the first reply was kept: the newer one */
    sl->bytes += cost - entry_cost(b->e->key_len, b->e->reply_len, b->e->n_shuffle);
    free(b->e);
    b->e = e;
    return;
  }
  if (sl->bytes + cost > s->budget) forget_all(sl);
  if ((sl->count + 1) * 2 > sl->cap) {
    uint32_t cap = sl->cap ? sl->cap * 2 : 64;
    bucket *table = calloc(cap, sizeof *table);
    if (!table) {
      free(e);
      return;
    }
    for (uint32_t i = 0; i < sl->cap; i++) {
      if (!sl->table[i].e) continue;
      uint32_t j = (uint32_t)sl->table[i].hash & (cap - 1);
      while (table[j].e) j = (j + 1) & (cap - 1);
      table[j] = sl->table[i];
    }
    free(sl->table);
    sl->table = table;
    sl->cap = cap;
  }
  *probe(sl, h, key, key_len) = (bucket){.hash = h, .e = e};
  sl->count++;
  sl->bytes += cost;
}

static uint64_t next_random(server *s) {
  uint64_t x = s->rng; /* xorshift64* */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* ---------- slots: one per sandbox ---------- */

static uint64_t slot_id(const server *s, uint32_t index) { return ((uint64_t)s->slots[index].gen << INDEX_BITS) | index; }

static slot *find(server *s, uint64_t id) {
  uint32_t index = (uint32_t)(id & ((1u << INDEX_BITS) - 1));
  if (id == WAKE_ID || index >= s->n_slots) return NULL;
  slot *sl = &s->slots[index];
  return sl->fd >= 0 && sl->gen == (uint32_t)(id >> INDEX_BITS) ? sl : NULL;
}

/* ---------- the serving thread ---------- */

/*
 * A socket is armed for one wake-up at a time (EPOLLONESHOT). When a wake-up
 * leaves queries for JavaScript, the socket stays unarmed until JavaScript
 * has answered them (call_js re-arms it): meanwhile its queries wait in the
 * socket's buffer, and the next wake-up reads them in batches, instead of
 * this thread waking, and handing over, once per query.
 */
static void rearm(server *s, slot *sl, uint64_t id) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = id};
  epoll_ctl(s->ep, EPOLL_CTL_MOD, sl->fd, &ev);
}

static void stage(server *s, const struct sockaddr_in *from, const uint8_t *query, uint32_t len) {
  s->stage[s->staged++] = (asked){.addr = from->sin_addr.s_addr, .port = from->sin_port, .len = (uint16_t)len, .at = s->staged_bytes};
  memcpy(s->stage_bytes + s->staged_bytes, query, len);
  s->staged_bytes += len;
}

static void hand_over(server *s, slot *sl, uint64_t id) {
  if (s->staged == 0) return rearm(s, sl, id);
  batch *b = malloc(sizeof *b + s->staged * sizeof(asked) + s->staged_bytes);
  if (b) {
    *b = (batch){.s = s, .id = id, .count = s->staged};
    memcpy(b->q, s->stage, s->staged * sizeof(asked));
    memcpy(&b->q[b->count], s->stage_bytes, s->staged_bytes);
    if (napi_call_threadsafe_function(s->on_miss, b, napi_tsfn_nonblocking) == napi_ok) {
      s->misses += s->staged;
      return; /* call_js re-arms */
    }
    free(b); /* closing */
  }
  s->dropped += s->staged;
  rearm(s, sl, id);
}

/* The replay of `e` to query `q`, in `r`: the asker's ID, the addresses shuffled (Fisher-Yates). */
static void replay(server *s, const entry *e, const uint8_t *q, uint8_t *r) {
  memcpy(r, e->reply, e->reply_len);
  r[0] = q[0];
  r[1] = q[1];
  for (uint32_t j = e->n_shuffle; j > 1; j--) {
    uint32_t k = (uint32_t)(next_random(s) % j), a, b;
    memcpy(&a, r + e->shuffle[j - 1], 4);
    memcpy(&b, r + e->shuffle[k], 4);
    memcpy(r + e->shuffle[j - 1], &b, 4);
    memcpy(r + e->shuffle[k], &a, 4);
  }
}

static void serve_slot(server *s, slot *sl, uint64_t id) {
  s->staged = s->staged_bytes = 0;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < BATCH; i++) {
      s->in_hdr[i].msg_hdr.msg_namelen = sizeof s->in_addr[i];
      s->in_hdr[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(sl->fd, s->in_hdr, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    int out = 0;
    for (int i = 0; i < n; i++) {
      const struct sockaddr_in *from = &s->in_addr[i];
      const uint8_t *q = s->in_buf[i];
      uint32_t len = s->in_hdr[i].msg_len;
      if (from->sin_family != AF_INET || (ntohl(from->sin_addr.s_addr) >> 24) != 127 || from->sin_port == 0) continue; /* not from inside */
      if ((s->in_hdr[i].msg_hdr.msg_flags & MSG_TRUNC) || len < 12) continue; /* junk: dropped */
      entry *e = len - 2 <= MAX_KEY ? lookup(sl, siphash13(s->key, q + 2, len - 2), q + 2, len - 2) : NULL;
      if (!e) {
        stage(s, from, q, len);
        continue;
      }
      replay(s, e, q, s->out_buf[out]);
      s->out_iov[out].iov_len = e->reply_len;
      s->out_hdr[out].msg_hdr.msg_name = (void *)from;
      s->out_hdr[out].msg_hdr.msg_namelen = sizeof *from;
      out++;
      s->hits++;
    }
    for (int sent = 0; sent < out;) {
      int k = sendmmsg(sl->fd, s->out_hdr + sent, (unsigned)(out - sent), MSG_DONTWAIT);
      if (k > 0) {
        sent += k;
      } else if (k < 0 && errno == EINTR) {
        continue;
      } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        s->dropped++; /* this reply cannot go (its asker is gone, say): the next ones may */
        sent++;
      } else {
        s->dropped += out - sent; /* socket buffer full: the askers retry */
        break;
      }
    }
    if (n < BATCH) break;
  }
  hand_over(s, sl, id);
}

/* Signals are Node's to handle, on its own thread. */
static void block_signals(void) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void *serve(void *arg) {
  server *s = arg;
  struct epoll_event evs[64];
  block_signals();
  for (;;) {
    int n = epoll_wait(s->ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) {
      perror("vipmesh embedded DNS: epoll_wait"); /* a bad descriptor: memory is not what it should be */
      abort();
    }
    for (int i = 0; i < n; i++) {
      pthread_mutex_lock(&s->mu); /* per socket, so that Node's thread never waits long */
      if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return NULL;
      }
      slot *sl = find(s, evs[i].data.u64); /* NULL: the wake-up, or removed since epoll_wait returned */
      if (sl) serve_slot(s, sl, evs[i].data.u64);
      pthread_mutex_unlock(&s->mu);
    }
  }
}

/* ---------- Node-API glue ---------- */

#define CHECK(call)                                                                                     \
  do {                                                                                                  \
    if ((call) != napi_ok) {                                                                            \
      const napi_extended_error_info *info = NULL;                                                      \
      napi_get_last_error_info(env, &info);                                                             \
      napi_throw_error(env, NULL, info && info->error_message ? info->error_message : #call " failed"); \
      return NULL;                                                                                      \
    }                                                                                                   \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* On Node's thread: each query of a batch to onMiss(slot, query, address, port), then the socket re-armed. */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  batch *b = data;
  if (!env || !js_cb) { /* closing: the socket is closed too */
    free(b);
    return;
  }
  const uint8_t *bytes = (const uint8_t *)&b->q[b->count];
  for (uint32_t i = 0; i < b->count; i++) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) break;
    napi_value argv[4], undefined;
    char address[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &b->q[i].addr, address, sizeof address);
    void *copy;
    if (napi_create_double(env, (double)b->id, &argv[0]) == napi_ok &&
        napi_create_buffer_copy(env, b->q[i].len, bytes + b->q[i].at, &copy, &argv[1]) == napi_ok &&
        napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &argv[2]) == napi_ok &&
        napi_create_uint32(env, ntohs(b->q[i].port), &argv[3]) == napi_ok && napi_get_undefined(env, &undefined) == napi_ok)
      napi_call_function(env, undefined, js_cb, 4, argv, NULL);
    napi_close_handle_scope(env, scope);
  }
  server *s = b->s;
  pthread_mutex_lock(&s->mu);
  slot *sl = find(s, b->id);
  if (sl) rearm(s, sl, b->id); /* else removed meanwhile */
  pthread_mutex_unlock(&s->mu);
  free(b);
}

static void close_slot(server *s, slot *sl);

/* Stops the thread and closes every socket; the struct lives on until its External is collected. */
static void halt(server *s) {
  if (s->stopping) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  pthread_mutex_unlock(&s->mu);
  uint64_t one = 1;
  if (write(s->wake, &one, sizeof one) < 0) { /* cannot fail: an eventfd's counter is far from full */
  }
  pthread_join(s->thread, NULL);
  for (uint32_t i = 0; i < s->n_slots; i++)
    if (s->slots[i].fd >= 0) close_slot(s, &s->slots[i]);
  close(s->ep);
  close(s->wake);
  napi_release_threadsafe_function(s->on_miss, napi_tsfn_abort);
}

/* At the environment's teardown (process exit, a worker's end): before the tsfn and the env go. */
static void cleanup_hook(void *arg) { halt(arg); }

/* Stopped by JavaScript (close) or when collected. */
static void stop(napi_env env, server *s) {
  if (s->stopping) return;
  napi_remove_env_cleanup_hook(env, cleanup_hook, s);
  halt(s);
}

static void finalize_server(napi_env env, void *data, void *hint) {
  (void)hint;
  server *s = data;
  stop(env, s);
  free(s->slots);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static server *server_arg(napi_env env, napi_value v) {
  server *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "not a DNS replay server");
    return NULL;
  }
  if (s->stopping) {
    napi_throw_error(env, NULL, "the DNS replay server is closed");
    return NULL;
  }
  return s;
}

/* createServer(onMiss(id, query, address, port), bytesPerSlot) → server */
static napi_value create_server(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name, out;
  napi_valuetype t;
  double budget;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function || napi_get_value_double(env, argv[1], &budget) != napi_ok ||
      !(budget >= 0)) {
    napi_throw_type_error(env, NULL, "createServer(onMiss: function, bytesPerSlot: number)");
    return NULL;
  }
  server *s = calloc(1, sizeof *s);
  if (!s) return throw_errno(env, "createServer", ENOMEM);
  s->budget = budget > MAX_BUDGET ? MAX_BUDGET : (size_t)budget;
  s->ep = s->wake = -1;
  pthread_mutex_init(&s->mu, NULL);
  if (getrandom(s->key, sizeof s->key, 0) != sizeof s->key || getrandom(&s->rng, sizeof s->rng, 0) != sizeof s->rng) {
    free(s);
    return throw_errno(env, "createServer: getrandom", errno);
  }
  s->rng |= 1; /* xorshift's state must not be 0 */
  for (int i = 0; i < BATCH; i++) {
    s->in_iov[i] = (struct iovec){.iov_base = s->in_buf[i], .iov_len = MAX_QUERY};
    s->in_hdr[i].msg_hdr = (struct msghdr){.msg_name = &s->in_addr[i], .msg_iov = &s->in_iov[i], .msg_iovlen = 1};
    s->out_iov[i] = (struct iovec){.iov_base = s->out_buf[i]};
    s->out_hdr[i].msg_hdr = (struct msghdr){.msg_iov = &s->out_iov[i], .msg_iovlen = 1};
  }
  const char *failed = NULL;
  int err = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_ID};
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->ep < 0 || s->wake < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake, &ev) < 0) {
    failed = "createServer: epoll", err = errno;
    goto fail;
  }
  /* one batch per socket waits at most (rearm), so the queue needs no bound of its own */
  if (napi_create_string_utf8(env, "vipmesh-dns-replay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->on_miss) != napi_ok) {
    failed = "createServer: threadsafe function", err = EINVAL;
    goto fail;
  }
  napi_unref_threadsafe_function(env, s->on_miss); /* the TCP listeners keep the process alive, not this */
  if ((err = pthread_create(&s->thread, NULL, serve, s)) != 0) {
    napi_release_threadsafe_function(s->on_miss, napi_tsfn_abort);
    failed = "createServer: thread";
    goto fail;
  }
  if (napi_add_env_cleanup_hook(env, cleanup_hook, s) != napi_ok || napi_create_external(env, s, finalize_server, NULL, &out) != napi_ok) {
    halt(s); /* closes ep and wake */
    napi_remove_env_cleanup_hook(env, cleanup_hook, s);
    pthread_mutex_destroy(&s->mu);
    free(s);
    napi_throw_error(env, NULL, "createServer: cannot wrap the server");
    return NULL;
  }
  return out;
fail:
  if (s->ep >= 0) close(s->ep);
  if (s->wake >= 0) close(s->wake);
  pthread_mutex_destroy(&s->mu);
  free(s);
  return throw_errno(env, failed, err);
}

/* add(server, udpFd) → id: serves that socket from now on, and closes it on remove() */
static napi_value add(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server *s = server_arg(env, argv[0]);
  if (!s) return NULL;
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[1], &fd));
  pthread_mutex_lock(&s->mu);
  uint32_t index = 0;
  while (index < s->n_slots && s->slots[index].fd >= 0) index++;
  if (index == s->n_slots) {
    slot *more = index < (1u << INDEX_BITS) ? realloc(s->slots, (index + 1) * sizeof *more) : NULL;
    if (!more) {
      pthread_mutex_unlock(&s->mu);
      return throw_errno(env, "add", ENOMEM);
    }
    s->slots = more;
    s->slots[index] = (slot){.fd = -1};
    s->n_slots++;
  }
  slot *sl = &s->slots[index];
  sl->gen++;
  uint64_t id = slot_id(s, index);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = id};
  if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    int err = errno;
    pthread_mutex_unlock(&s->mu);
    return throw_errno(env, "add: epoll_ctl", err);
  }
  sl->fd = fd;
  pthread_mutex_unlock(&s->mu);
  CHECK(napi_create_double(env, (double)id, &out));
  return out;
}

static int id_arg(napi_env env, napi_value v, uint64_t *id) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !isfinite(d) || d < 0 || d >= 9007199254740992.0) {
    napi_throw_type_error(env, NULL, "not a slot id");
    return 0;
  }
  *id = (uint64_t)d;
  return 1;
}

/* `op` on the slot of the (server, id) arguments, under the lock; a removed id is fine. */
static napi_value on_slot(napi_env env, napi_callback_info info, void (*op)(server *, slot *)) {
  size_t argc = 2;
  napi_value argv[2];
  uint64_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server *s = server_arg(env, argv[0]);
  if (!s || !id_arg(env, argv[1], &id)) return NULL;
  pthread_mutex_lock(&s->mu);
  slot *sl = find(s, id);
  if (sl) op(s, sl);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void close_slot(server *s, slot *sl) {
  epoll_ctl(s->ep, EPOLL_CTL_DEL, sl->fd, NULL);
  close(sl->fd);
  sl->fd = -1;
  forget_all(sl);
}

static void forget_slot(server *s, slot *sl) {
  (void)s;
  forget_all(sl);
}

/* remove(server, id): stops serving and closes the socket */
static napi_value remove_slot(napi_env env, napi_callback_info info) { return on_slot(env, info, close_slot); }

/* forget(server, id): drops every kept reply of that slot (its records changed) */
static napi_value forget(napi_env env, napi_callback_info info) { return on_slot(env, info, forget_slot); }

/* Offsets a replay may shuffle: whole addresses after the header, in order, not overlapping, inside the reply. */
static int valid_shuffle(const uint16_t *at, size_t n, size_t reply_len) {
  for (size_t i = 0; i < n; i++)
    if (at[i] < 12 || (size_t)at[i] + 4 > reply_len || (i > 0 && at[i] < at[i - 1] + 4)) return 0;
  return 1;
}

/*
 * send(server, id, address, port, reply, query?, shuffleAt?) → sent: sends `reply`
 * on the slot's socket; with `query`, keeps it to replay to the same query,
 * shuffling the 4-byte addresses at the offsets `shuffleAt` (a Uint16Array).
 */
static napi_value send_reply(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], out;
  uint64_t id;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "send(server, slot, address, port, reply, query?, shuffleAt?)");
    return NULL;
  }
  server *s = server_arg(env, argv[0]);
  if (!s || !id_arg(env, argv[1], &id)) return NULL;
  char address[INET_ADDRSTRLEN];
  uint32_t port;
  uint8_t *reply, *query = NULL;
  size_t reply_len, query_len = 0, n_shuffle = 0;
  uint16_t *shuffle = NULL;
  napi_valuetype t;
  CHECK(napi_get_value_string_utf8(env, argv[2], address, sizeof address, NULL));
  CHECK(napi_get_value_uint32(env, argv[3], &port));
  CHECK(napi_get_buffer_info(env, argv[4], (void **)&reply, &reply_len));
  if (argc > 5 && napi_typeof(env, argv[5], &t) == napi_ok && t == napi_object)
    CHECK(napi_get_buffer_info(env, argv[5], (void **)&query, &query_len));
  if (argc > 6 && napi_typeof(env, argv[6], &t) == napi_ok && t == napi_object) {
    napi_typedarray_type type;
    void *data;
    CHECK(napi_get_typedarray_info(env, argv[6], &type, &n_shuffle, &data, NULL, NULL));
    if (type != napi_uint16_array) {
      napi_throw_type_error(env, NULL, "shuffleAt must be a Uint16Array");
      return NULL;
    }
    shuffle = data;
  }
  if (!valid_shuffle(shuffle, n_shuffle, reply_len)) {
    napi_throw_range_error(env, NULL, "shuffleAt: offsets must be ascending, 4 bytes apart, past the header and inside the reply");
    return NULL;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (port > 65535 || inet_pton(AF_INET, address, &to.sin_addr) != 1) {
    napi_throw_type_error(env, NULL, "send: not an IPv4 address and port");
    return NULL;
  }
  pthread_mutex_lock(&s->mu);
  slot *sl = find(s, id);
  int sent = sl && sendto(sl->fd, reply, reply_len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) == (ssize_t)reply_len;
  if (sl && query && query_len >= 12 && query_len - 2 <= MAX_KEY && reply_len >= 12 && reply_len <= MAX_REPLY && n_shuffle <= MAX_SHUFFLE)
    keep(s, sl, query + 2, (uint32_t)query_len - 2, reply, (uint32_t)reply_len, shuffle, (uint32_t)n_shuffle);
  pthread_mutex_unlock(&s->mu);
  CHECK(napi_get_boolean(env, sent, &out));
  return out;
}

static napi_value set_number(napi_env env, napi_value obj, const char *key, double value) {
  napi_value v;
  CHECK(napi_create_double(env, value, &v));
  CHECK(napi_set_named_property(env, obj, key, v));
  return obj;
}

/* stats(server, id?) → { hits, misses, dropped, kept?, keptBytes? }: counters since creation; kept: what the slot keeps */
static napi_value stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server *s = server_arg(env, argv[0]);
  if (!s) return NULL;
  napi_valuetype t = napi_undefined;
  uint64_t id = 0;
  if (argc > 1) CHECK(napi_typeof(env, argv[1], &t));
  if (t != napi_undefined && !id_arg(env, argv[1], &id)) return NULL;
  pthread_mutex_lock(&s->mu);
  double hits = s->hits, misses = s->misses, dropped = s->dropped;
  slot *sl = t != napi_undefined ? find(s, id) : NULL;
  double kept = sl ? sl->count : 0, kept_bytes = sl ? (double)sl->bytes : 0;
  pthread_mutex_unlock(&s->mu);
  CHECK(napi_create_object(env, &out));
  if (!set_number(env, out, "hits", hits) || !set_number(env, out, "misses", misses) || !set_number(env, out, "dropped", dropped)) return NULL;
  if (t != napi_undefined && (!set_number(env, out, "kept", kept) || !set_number(env, out, "keptBytes", kept_bytes))) return NULL;
  return out;
}

/* close(server): stops the thread and closes every socket it served */
static napi_value close_server(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  server *s = NULL;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  if (s) stop(env, s);
  return NULL;
}

typedef struct open_job {
  const char *ns;
  struct in_addr addr;
  uint16_t port;
  int udp, tcp, err;
  const char *what;
} open_job;

static void *open_in_namespace(void *arg) {
  open_job *j = arg;
  block_signals();
  int one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(j->port), .sin_addr = j->addr};
  int nsfd = open(j->ns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return j->what = "open the namespace", j->err = errno, NULL;
  int entered = setns(nsfd, CLONE_NEWNET);
  j->err = errno;
  close(nsfd);
  if (entered < 0) return j->what = "enter the namespace", NULL;
  j->udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  /* no SO_REUSEADDR on UDP: with it, a process in the sandbox could bind the same address and take the DNS */
  if (j->udp < 0 || bind(j->udp, (struct sockaddr *)&sa, sizeof sa) < 0)
    return j->what = "udp", j->err = errno, NULL;
  j->tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (j->tcp < 0 || setsockopt(j->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(j->tcp, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(j->tcp, 128) < 0)
    return j->what = "tcp", j->err = errno, NULL;
  j->err = 0;
  return NULL;
}

/* openSockets(namespacePath, address, port) → [udpFd, tcpFd]: bound (and listening) inside that network namespace */
static napi_value open_sockets(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, v;
  char ns[4096], address[INET_ADDRSTRLEN];
  uint32_t port;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_get_value_string_utf8(env, argv[0], ns, sizeof ns, NULL));
  CHECK(napi_get_value_string_utf8(env, argv[1], address, sizeof address, NULL));
  CHECK(napi_get_value_uint32(env, argv[2], &port));
  open_job j = {.ns = ns, .port = (uint16_t)port, .udp = -1, .tcp = -1};
  if (port > 65535 || inet_pton(AF_INET, address, &j.addr) != 1) {
    napi_throw_type_error(env, NULL, "openSockets: not an IPv4 address and port");
    return NULL;
  }
  pthread_t thread;
  int err = pthread_create(&thread, NULL, open_in_namespace, &j);
  if (err) return throw_errno(env, "openSockets: thread", err);
  pthread_join(thread, NULL);
  if (j.err) {
    if (j.udp >= 0) close(j.udp);
    if (j.tcp >= 0) close(j.tcp);
    return throw_errno(env, j.what, j.err);
  }
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, j.udp, &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_int32(env, j.tcp, &v));
  CHECK(napi_set_element(env, out, 1, v));
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"openSockets", NULL, open_sockets, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createServer", NULL, create_server, NULL, NULL, NULL, napi_enumerable, NULL},
      {"add", NULL, add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"remove", NULL, remove_slot, NULL, NULL, NULL, napi_enumerable, NULL},
      {"forget", NULL, forget, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, send_reply, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_server, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
