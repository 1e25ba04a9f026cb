// vipmesh-confine: starts a task confined as Docker confines a container, over
// the host's own root, and enters a running task for its health checks and
// `vipmesh exec`. Built into build/vipmesh-confine by `npm ci`; confine.ts
// builds its command lines. docs/ARCHITECTURE.md ("Task confinement") has the
// whole story; in short:
//
//   run   [OPTIONS] -- CMD...   outer (stays in the host's PID namespace, the
//                               pid the agent tracks; the task's log shim) →
//                               init, PID 1 of a new PID/mount/IPC/UTS
//                               namespace (mounts, reaps, forwards signals) →
//                               the task.
//   enter [OPTIONS] --target PID -- CMD...
//                               joins PID's task's namespaces and cgroups, and
//                               runs CMD as confined as the task.
//   --log FILE [--log-max-bytes N]  (with CONTAINER_ID set, any order)
//                               a container's log shim: containerd's shim
//                               hands it the container's stdout and stderr
//                               (container_log).
//
// OPTIONS: --cgroup DIR (repeatable: joined before anything else), --caps HEX
// (the capabilities kept, a bitmask), --user UID[:GID]|NAME[:GROUP],
// --nofile N, for enter: --container 1 (the target is a container's PID 1,
// not confine's init), and for run: --netns NAME (the sandbox: its network namespace,
// its /etc/netns/NAME files over /etc's and its /sys, as `ip netns exec`
// gives), --hostname H, --home DIR (the task's writable directory, mounted at
// /root), --hide PATH (repeatable: made empty), --keep PATH (repeatable:
// shown read-only even inside a hidden or tmpfs path), --log FILE (the task's
// log, else the outer's stdout) and --log-max-bytes N (past N bytes FILE
// becomes FILE.1, replacing the older one, and a new FILE starts).
//
// The log: init and the task write to two pipes (stdout, stderr); the outer
// reads both and appends each line as `<time> <o|e> <text>\n`, the time
// RFC 3339 UTC with nanoseconds, fixed width, taken when it read the line
// (packages/api/src/task-log.ts parses it). Lines over 16 KiB are split; a
// task writing faster than the log takes it blocks on its full pipe.
// Confinement's own early failures go to the log as they are.
//
// Exit status: the task's, or 128+N when it died of signal N; 125 when
// confinement itself failed.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#define FAILED 125
#define MAX_LIST 64

static struct {
  const char *cgroups[MAX_LIST];
  int ncgroups;
  const char *hides[MAX_LIST];
  int nhides;
  const char *keeps[MAX_LIST];
  int keepfds[MAX_LIST];
  int nkeeps;
  uint64_t caps;
  const char *user;
  long nofile;
  const char *netns;
  const char *hostname;
  const char *home;
  pid_t target;
  int container; // enter: the target is a container's PID 1 (runc made its mounts before it ran)
  const char *log;
  long long log_max;
  char **argv;
} opt;

static void die(const char *what) {
  fprintf(stderr, "vipmesh-confine: %s: %s\n", what, strerror(errno));
  exit(FAILED);
}

static void dief(const char *what, const char *arg) {
  fprintf(stderr, "vipmesh-confine: %s %s: %s\n", what, arg, strerror(errno));
  exit(FAILED);
}

static void usage(const char *why) {
  fprintf(stderr, "vipmesh-confine: %s\nusage: vipmesh-confine run|enter [OPTIONS] -- CMD...\n", why);
  exit(FAILED);
}

static void add(const char **list, int *n, const char *value) {
  if (*n == MAX_LIST) usage("too many paths");
  list[(*n)++] = value;
}

static void parse(int argc, char **argv) {
  opt.nofile = -1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      if (i + 1 == argc) usage("no command");
      opt.argv = argv + i + 1;
      return;
    }
    if (i + 1 == argc) usage("an option lacks its value");
    const char *v = argv[++i];
    if (strcmp(a, "--cgroup") == 0) add(opt.cgroups, &opt.ncgroups, v);
    else if (strcmp(a, "--hide") == 0) add(opt.hides, &opt.nhides, v);
    else if (strcmp(a, "--keep") == 0) add(opt.keeps, &opt.nkeeps, v);
    else if (strcmp(a, "--caps") == 0) opt.caps = strtoull(v, NULL, 16);
    else if (strcmp(a, "--user") == 0) opt.user = v;
    else if (strcmp(a, "--nofile") == 0) opt.nofile = strtol(v, NULL, 10);
    else if (strcmp(a, "--netns") == 0) opt.netns = v;
    else if (strcmp(a, "--hostname") == 0) opt.hostname = v;
    else if (strcmp(a, "--home") == 0) opt.home = v;
    else if (strcmp(a, "--target") == 0) opt.target = (pid_t)strtol(v, NULL, 10);
    else if (strcmp(a, "--container") == 0) opt.container = strcmp(v, "1") == 0;
    else if (strcmp(a, "--log") == 0) opt.log = v;
    else if (strcmp(a, "--log-max-bytes") == 0) {
      char *end;
      opt.log_max = strtoll(v, &end, 10);
      if (!*v || *end || opt.log_max < 0) usage("--log-max-bytes needs a number of bytes");
    } else usage(a);
  }
  usage("no command");
}

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) < 0) dief("cannot write", path);
  close(fd);
}

/** Joins every cgroup given: the process and all it starts count against their limits. */
static void join_cgroups(void) {
  char path[4096], pid[32];
  snprintf(pid, sizeof pid, "%d\n", getpid());
  for (int i = 0; i < opt.ncgroups; i++) {
    snprintf(path, sizeof path, "%s/cgroup.procs", opt.cgroups[i]);
    write_file(path, pid);
  }
}

/* ---- mounts (run: in init, inside the new mount namespace) ---- */

static void mnt(const char *src, const char *target, const char *type, unsigned long flags, const char *data) {
  if (mount(src, target, type, flags, data) < 0) dief("cannot mount", target);
}

/** A bind mount of target onto itself, then made read-only. */
static void bind_readonly(const char *src, const char *target) {
  mnt(src, target, NULL, MS_BIND | MS_REC, NULL);
  mnt(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

#define HIDDEN_FLAGS (MS_NOSUID | MS_NODEV | MS_NOEXEC)
#define HIDDEN_DATA "size=4k,mode=755"

/**
 * Makes a path empty: an empty tmpfs over a directory (read-only with
 * `readonly`; else made so once the paths to keep are in), /dev/null over
 * anything else (on a nodev mount: it cannot even be opened). Returns whether
 * it hid a directory.
 */
static int hide(const char *path, int readonly) {
  static const char *fresh[] = {"/tmp/", "/run/", "/dev/", "/root/"}; // replaced as a whole anyway
  for (size_t i = 0; i < sizeof fresh / sizeof *fresh; i++) {
    if (strncmp(path, fresh[i], strlen(fresh[i])) == 0) return 0;
  }
  struct stat st;
  if (lstat(path, &st) < 0 || S_ISLNK(st.st_mode)) return 0; // nothing there (a link's target is hidden by its own name)
  if (!S_ISDIR(st.st_mode)) {
    mnt("/dev/null", path, NULL, MS_BIND, NULL);
    return 0;
  }
  mnt("tmpfs", path, "tmpfs", HIDDEN_FLAGS | (readonly ? MS_RDONLY : 0), HIDDEN_DATA);
  return 1;
}

static void mkdirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(path, 0755);
    *p = '/';
  }
  mkdir(path, 0755);
}

static void make_dev(void) {
  static const struct { const char *name; unsigned major, minor; } nodes[] = {
      {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
  };
  static const char *links[][2] = {
      {"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"},
      {"/proc/self/fd/2", "/dev/stderr"}, {"pts/ptmx", "/dev/ptmx"},
  };
  mnt("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755");
  mode_t old = umask(0);
  char path[64];
  for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
    snprintf(path, sizeof path, "/dev/%s", nodes[i].name);
    if (mknod(path, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) < 0) dief("cannot make", path);
  }
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    if (symlink(links[i][0], links[i][1]) < 0) dief("cannot link", links[i][1]);
  }
  mkdir("/dev/pts", 0755);
  mkdir("/dev/shm", 01777);
  mkdir("/dev/mqueue", 01777);
  umask(old);
  mnt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
  mnt("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  mnt("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  // no new device node can appear: /dev itself is read-only, every other writable mount nodev
  mnt(NULL, "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=64k,mode=755");
}

/** Docker's masked and read-only paths of /proc and /sys (moby's oci/defaults.go). */
static void confine_proc_sys(void) {
  static const char *masked[] = {"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                                 "/proc/scsi", "/proc/sysrq-trigger", "/sys/firmware", "/sys/devices/virtual/powercap"};
  static const char *readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"};
  mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  for (size_t i = 0; i < sizeof masked / sizeof *masked; i++) hide(masked[i], 1);
  for (size_t i = 0; i < sizeof readonly / sizeof *readonly; i++) {
    if (access(readonly[i], F_OK) == 0) bind_readonly(readonly[i], readonly[i]);
  }
}

// What `ip netns exec` gives: each file in /etc/netns/NAME over its namesake in /etc, and a /sys of the sandbox's network namespace.
static void sandbox_files(void) {
  if (umount2("/sys", MNT_DETACH) < 0 && errno != EINVAL) die("cannot unmount /sys");
  mnt("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  char dir[4096], src[4096 + 256], target[4096 + 256];
  snprintf(dir, sizeof dir, "/etc/netns/%s", opt.netns);
  DIR *d = opendir(dir);
  if (!d) return; // none written for this sandbox
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    snprintf(src, sizeof src, "%s/%s", dir, e->d_name);
    snprintf(target, sizeof target, "/etc/%s", e->d_name);
    if (access(target, F_OK) == 0) mnt(src, target, NULL, MS_BIND, NULL);
  }
  closedir(d);
}

/**
 * The task's view of the host's root: all of it read-only and nodev, fresh
 * /proc, /dev, /tmp and /run, its own writable /root, secrets hidden.
 */
static void confine_mounts(void) {
  char path[4096];
  // the paths to keep, held open before anything is mounted over them
  for (int i = 0; i < opt.nkeeps; i++) {
    opt.keepfds[i] = open(opt.keeps[i], O_PATH | O_CLOEXEC);
    if (opt.keepfds[i] < 0) dief("cannot open", opt.keeps[i]);
  }
  int home = open(opt.home, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (home < 0) dief("cannot open", opt.home);

  mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  sandbox_files();
  struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV};
  if (syscall(SYS_mount_setattr, -1, "/", AT_RECURSIVE, &ro, sizeof ro) < 0) die("cannot make / read-only");

  snprintf(path, sizeof path, "/proc/self/fd/%d", home);
  mnt(path, "/root", NULL, MS_BIND, NULL);
  mnt(NULL, "/root", NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV, NULL);
  int hidden[MAX_LIST];
  for (int i = 0; i < opt.nhides; i++) hidden[i] = hide(opt.hides[i], 0);
  // tmpfs is memory: capped, so that a task without --limit-memory cannot fill the node's with files
  mnt("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=512m");
  mnt("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64m");
  confine_proc_sys();
  make_dev();
  for (int i = 0; i < opt.nkeeps; i++) {
    snprintf(path, sizeof path, "%s", opt.keeps[i]);
    mkdirs(path); // fails quietly where it exists or cannot be made; the mount then says why
    snprintf(path, sizeof path, "/proc/self/fd/%d", opt.keepfds[i]);
    bind_readonly(path, opt.keeps[i]);
    close(opt.keepfds[i]);
  }
  for (int i = 0; i < opt.nhides; i++) {
    if (hidden[i]) mnt(NULL, opt.hides[i], NULL, MS_REMOUNT | MS_RDONLY | HIDDEN_FLAGS, HIDDEN_DATA);
  }
  close(home);
  if (chdir("/") < 0) die("cannot chdir /");
}

/* ---- privileges (both modes, in the process that execs the command) ---- */

static void resolve_user(uid_t *uid, gid_t *gid) {
  *uid = 0;
  *gid = 0;
  if (!opt.user || !*opt.user) return;
  char user[256];
  snprintf(user, sizeof user, "%s", opt.user);
  char *group = strchr(user, ':');
  if (group) *group++ = 0;
  char *end;
  unsigned long n = strtoul(user, &end, 10);
  if (*user && !*end) {
    *uid = (uid_t)n;
    struct passwd *pw = getpwuid(*uid);
    *gid = pw ? pw->pw_gid : (gid_t)n;
  } else {
    struct passwd *pw = getpwnam(user);
    if (!pw) usage("no such user");
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
  }
  if (!group) return;
  n = strtoul(group, &end, 10);
  if (*group && !*end) {
    *gid = (gid_t)n;
  } else {
    struct group *gr = getgrnam(group);
    if (!gr) usage("no such group");
    *gid = gr->gr_gid;
  }
}

/** Takes every capability but `caps` out of the bounding set, for good (needs CAP_SETPCAP: before any setuid). */
static void bound_caps(uint64_t caps) {
  for (int cap = 0; cap <= 63; cap++) {
    if (!(caps & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("cannot drop a capability");
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

/** Keeps only `caps` permitted and effective (after bound_caps); inheritable empty, as Docker has them. */
static void limit_caps(uint64_t caps) {
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct data[2] = {
      {(uint32_t)caps, (uint32_t)caps, 0},
      {(uint32_t)(caps >> 32), (uint32_t)(caps >> 32), 0},
  };
  // for a non-root user the kernel already cleared them all at setuid
  if (getuid() == 0 && syscall(SYS_capset, &header, data) < 0) die("cannot set capabilities");
}

#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM)
#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "vipmesh-confine knows the syscall numbers of x86_64 and aarch64"
#endif
#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/**
 * What Docker's default seccomp profile keeps from a container without
 * CAP_SYS_ADMIN and friends, as a deny list: the kernel's keyring, BPF,
 * perf, ptrace and other processes' memory, new namespaces, mounts, modules,
 * the clock, and io_uring. clone3 answers ENOSYS (its flags are out of a
 * filter's reach), so libc falls back to clone, whose flags are checked.
 */
static void seccomp_deny(void) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), // x32
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
#endif
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])), // low half on little-endian
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      DENY(__NR_keyctl), DENY(__NR_add_key), DENY(__NR_request_key), DENY(__NR_bpf), DENY(__NR_perf_event_open),
      DENY(__NR_userfaultfd), DENY(__NR_ptrace), DENY(__NR_process_vm_readv), DENY(__NR_process_vm_writev),
      DENY(__NR_kcmp), DENY(__NR_pidfd_getfd), DENY(__NR_unshare), DENY(__NR_setns), DENY(__NR_mount),
      DENY(__NR_umount2), DENY(__NR_pivot_root), DENY(__NR_fsopen), DENY(__NR_fsconfig), DENY(__NR_fsmount),
      DENY(__NR_fspick), DENY(__NR_move_mount), DENY(__NR_open_tree), DENY(__NR_mount_setattr),
      DENY(__NR_swapon), DENY(__NR_swapoff), DENY(__NR_reboot), DENY(__NR_kexec_load), DENY(__NR_kexec_file_load),
      DENY(__NR_init_module), DENY(__NR_finit_module), DENY(__NR_delete_module), DENY(__NR_acct),
      DENY(__NR_open_by_handle_at), DENY(__NR_name_to_handle_at), DENY(__NR_syslog), DENY(__NR_settimeofday),
      DENY(__NR_clock_settime), DENY(__NR_clock_adjtime), DENY(__NR_adjtimex), DENY(__NR_quotactl),
      DENY(__NR_vhangup), DENY(__NR_io_uring_setup), DENY(__NR_io_uring_enter), DENY(__NR_io_uring_register),
#ifdef __x86_64__
      DENY(__NR_iopl), DENY(__NR_ioperm), DENY(__NR_uselib), DENY(__NR_lookup_dcookie),
#endif
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = sizeof filter / sizeof *filter, .filter = filter};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) die("cannot install the seccomp filter");
}

/** enter: the task's own environment (its init's), which the command runs with, as `docker exec` does. */
static char **task_env;

static void read_task_env(pid_t init) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/environ", init);
  FILE *f = fopen(path, "re");
  if (!f) dief("cannot read", path);
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 2, f);
  fclose(f);
  buf[n] = buf[n + 1] = 0;
  size_t count = 0;
  for (size_t i = 0; i < n; i++) count += buf[i] == 0;
  task_env = calloc(count + 2, sizeof *task_env);
  if (!task_env) die("out of memory");
  size_t k = 0;
  for (char *p = buf; p < buf + n && *p; p += strlen(p) + 1) task_env[k++] = p;
}

/** Drops to what the task may do, then runs the command. Never returns. */
static void exec_confined(void) {
  uid_t uid;
  gid_t gid;
  resolve_user(&uid, &gid);
  struct rlimit core = {0, 0};
  setrlimit(RLIMIT_CORE, &core); // a task's core dump would land on the host's disk
  if (opt.nofile > 0) {
    struct rlimit files = {(rlim_t)opt.nofile, (rlim_t)opt.nofile};
    if (setrlimit(RLIMIT_NOFILE, &files) < 0) die("cannot set the open-files limit");
  }
  bound_caps(opt.caps);
  if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) die("cannot become the task's user");
  limit_caps(opt.caps);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("cannot set no_new_privs");
  seccomp_deny();
  if (task_env) environ = task_env;
  execvp(opt.argv[0], opt.argv);
  fprintf(stderr, "vipmesh-confine: cannot run %s: %s\n", opt.argv[0], strerror(errno));
  _exit(errno == ENOENT ? 127 : 126);
}

/* ---- processes ---- */

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static sigset_t waited(void) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaddset(&set, forwarded[i]);
  sigaddset(&set, SIGCHLD);
  return set;
}

static void unblock_all(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static int status_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/**
 * Waits for `child`, passing every forwarded signal on (to its process group
 * when `group`), reaping whatever else ends (as PID 1 must); exits with the
 * child's status.
 */
static void supervise(pid_t child, int group, const sigset_t *set) {
  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(set, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      if (!group || kill(-child, sig) < 0) kill(child, sig);
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid == child) exit(status_code(status));
    }
  }
}

/* ---- the log shim (run: in the outer) ---- */

#define LINE_BYTES (16 * 1024) /* longer lines are split (as Docker's json-file does): task-log.ts's LOG_LINE_MAX_BYTES */
#define TIME_LEN 30            /* 2024-05-01T12:00:00.123456789Z */
#define PREFIX_LEN (TIME_LEN + 3)

/** What the task wrote to one pipe and has not ended with a newline yet. */
struct stream {
  int fd; // -1 once at EOF
  char tag;
  size_t len;
  char buf[LINE_BYTES];
};

static struct {
  int dir;             // the log's directory: opened before the task's mounts hide it from the outer too
  char name[256];      // FILE
  char old[258];       // FILE.1
  long long size;      // bytes in the current FILE, written or buffered
  int reopen;          // FILE was renamed but a new one is not open yet: lines are dropped meanwhile
  size_t len;          // formatted lines not written yet
  char buf[64 * 1024]; // at least one whole line: PREFIX_LEN + LINE_BYTES + 1
} logf = {.dir = -1};

/**
 * --log: FILE opened (appending) as stdout and stderr, and its directory kept
 * for rotation. Returns what failed (errno says why), or NULL.
 */
static const char *try_open_log(void) {
  char dir[4096];
  const char *slash = strrchr(opt.log, '/');
  const char *name = slash ? slash + 1 : opt.log;
  size_t dirlen = slash ? (size_t)(slash - opt.log) : 0;
  if (!*name || strlen(name) >= sizeof logf.name || dirlen >= sizeof dir) usage("--log needs a file name");
  snprintf(dir, sizeof dir, "%.*s", (int)dirlen, opt.log);
  snprintf(logf.name, sizeof logf.name, "%s", name);
  snprintf(logf.old, sizeof logf.old, "%s.1", name);
  logf.dir = open(!slash ? "." : dirlen ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (logf.dir < 0) return "cannot open the directory of";
  int fd = openat(logf.dir, logf.name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) return "cannot open";
  if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) return "cannot write to";
  close(fd);
  logf.size = st.st_size;
  return NULL;
}

static void open_log(void) {
  if (!opt.log) {
    if (opt.log_max > 0) usage("--log-max-bytes needs --log FILE");
    return;
  }
  const char *failed = try_open_log();
  if (failed) dief(failed, opt.log);
}

/** Writes the buffered lines. A line the log does not take (disk full, say) is lost, never the task. */
static void flush_log(void) {
  size_t done = 0;
  while (done < logf.len) {
    ssize_t n = write(1, logf.buf + done, logf.len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (size_t)n;
  }
  logf.size -= (long long)(logf.len - done);
  logf.len = 0;
}

/**
 * FILE → FILE.1 (replacing the older one) and a new FILE; returns whether the
 * new one is open. Until it is, lines are dropped (and this is tried again at
 * the next one): at most 2 × the cap is ever on disk.
 */
static int rotate_log(void) {
  flush_log();
  if (!logf.reopen) {
    if (renameat(logf.dir, logf.name, logf.dir, logf.old) < 0 && errno != ENOENT) return 0;
    logf.reopen = 1;
  }
  int fd = openat(logf.dir, logf.name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) return 0;
  int ok = dup2(fd, 1) >= 0 && dup2(fd, 2) >= 0;
  close(fd);
  if (!ok) return 0;
  logf.reopen = 0;
  logf.size = 0;
  return 1;
}

/** Now, as task-log.ts writes times (the Unix epoch should the clock fail). */
static void log_time(char out[TIME_LEN + 1]) {
  struct timespec ts;
  struct tm tm;
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm) || strftime(out, 20, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
    snprintf(out, TIME_LEN + 1, "1970-01-01T00:00:00.000000000Z");
    return;
  }
  snprintf(out + 19, TIME_LEN + 1 - 19, ".%09ldZ", ts.tv_nsec);
}

/** One line (n ≤ LINE_BYTES, without its newline) into the log's buffer; rotates first when it would pass the cap. */
static void emit(char tag, const char *time, const char *text, size_t n) {
  size_t line = PREFIX_LEN + n + 1;
  if (opt.log_max > 0 && (logf.reopen || (logf.size > 0 && logf.size + (long long)line > opt.log_max)) && !rotate_log()) return;
  if (logf.len + line > sizeof logf.buf) flush_log();
  char *p = logf.buf + logf.len;
  memcpy(p, time, TIME_LEN);
  p[TIME_LEN] = ' ';
  p[TIME_LEN + 1] = tag;
  p[TIME_LEN + 2] = ' ';
  memcpy(p + PREFIX_LEN, text, n);
  p[PREFIX_LEN + n] = '\n';
  logf.len += line;
  logf.size += (long long)line;
}

/** The stream's unfinished line (if any) as a line of its own, and the pipe closed. */
static void end_stream(struct stream *s) {
  if (s->len > 0) {
    char time[TIME_LEN + 1];
    log_time(time);
    emit(s->tag, time, s->buf, s->len);
    s->len = 0;
  }
  close(s->fd);
  s->fd = -1;
}

/** One read of a pipe: its whole lines (or LINE_BYTES of one) to the log. Returns 1 after a read, 0 when nothing is there now, -1 at EOF. */
static int read_stream(struct stream *s) {
  ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
  if (n < 0 && errno == EINTR) return 1;
  if (n < 0 && errno == EAGAIN) return 0;
  if (n <= 0) {
    end_stream(s);
    return -1;
  }
  char time[TIME_LEN + 1];
  log_time(time);
  s->len += (size_t)n;
  char *start = s->buf, *end = s->buf + s->len, *nl;
  for (; (nl = memchr(start, '\n', (size_t)(end - start))); start = nl + 1) emit(s->tag, time, start, (size_t)(nl - start));
  size_t rest = (size_t)(end - start);
  if (rest == sizeof s->buf) {
    emit(s->tag, time, s->buf, rest);
    rest = 0;
  } else if (start != s->buf) {
    memmove(s->buf, start, rest);
  }
  s->len = rest;
  return 1;
}

static struct stream task_out = {.tag = 'o'}, task_err = {.tag = 'e'};

/**
 * The outer's life: the task's two pipes to the log, and what supervise()
 * does for init — every forwarded signal passed on to it, and once it ended
 * (and with it every process of its namespace, so nothing more can come
 * down the pipes) the rest of the pipes logged and its status as ours.
 */
static void shim(pid_t init, const sigset_t *set) {
  signal(SIGPIPE, SIG_IGN); // the outer's alone: a log that is a pipe which closed must not end it
  int sfd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("cannot make a signalfd"); // init dies with us
  struct stream *streams[2] = {&task_out, &task_err};
  int status = 0, ended = 0;
  for (;;) {
    struct pollfd p[3] = {{sfd, POLLIN, 0}, {task_out.fd, POLLIN, 0}, {task_err.fd, POLLIN, 0}}; // fd -1: left out
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR || errno == ENOMEM) continue;
      die("cannot poll");
    }
    struct signalfd_siginfo si;
    while (p[0].revents && read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
      if (si.ssi_signo != SIGCHLD) {
        kill(init, (int)si.ssi_signo);
        continue;
      }
      int st;
      pid_t pid;
      while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == init) status = st, ended = 1;
      }
    }
    // one read of each per turn: neither stream holds the other or the signals back
    for (int i = 0; i < 2; i++) {
      if (p[i + 1].revents && streams[i]->fd >= 0) read_stream(streams[i]);
    }
    if (ended) {
      for (int i = 0; i < 2; i++) {
        while (streams[i]->fd >= 0 && read_stream(streams[i]) > 0) {}
        if (streams[i]->fd >= 0) end_stream(streams[i]); // drained; a writer outside the namespace cannot hold us
      }
      flush_log();
      exit(status_code(status));
    }
    flush_log();
  }
}

static void run(void) {
  sigset_t set = waited();
  sigprocmask(SIG_BLOCK, &set, NULL);
  join_cgroups();
  open_log();
  // the task's stdout and stderr: pipes to the shim, made after joining the cgroups so that their buffers count against the task
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) die("cannot make the task's pipes");
  if (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) < 0) die("cannot make the task's pipes");
  char path[4096];
  snprintf(path, sizeof path, "/run/netns/%s", opt.netns);
  int net = open(path, O_RDONLY | O_CLOEXEC);
  if (net < 0 || setns(net, CLONE_NEWNET) < 0) dief("cannot enter the sandbox", path);
  close(net);
  uid_t uid;
  gid_t gid;
  resolve_user(&uid, &gid);
  if (uid != 0 && chown(opt.home, uid, gid) < 0) dief("cannot give the task its directory", opt.home);
  if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS) < 0) die("cannot make the task's namespaces");
  pid_t init = fork();
  if (init < 0) die("cannot fork");
  if (init > 0) { // outer: the log shim, and the agent's signals go to init
    close(out[1]);
    close(err[1]);
    task_out.fd = out[0];
    task_err.fd = err[0];
    shim(init, &set);
  }

  // init: stdout and stderr are the pipes; nothing else of the outer's stays open
  if (dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) die("cannot take the task's pipes");
  close(out[0]);
  close(out[1]);
  close(err[0]);
  close(err[1]);
  if (logf.dir >= 0) close(logf.dir);
  // init: PID 1 of the task's PID namespace; dies with the outer (the agent's SIGKILL)
  // (getppid() is 0 here, the outer being outside the namespace: its death in the instant before is not seen)
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  setpgid(0, 0);
  if (opt.hostname && sethostname(opt.hostname, strlen(opt.hostname)) < 0) die("cannot set the hostname");
  confine_mounts();
  pid_t task = fork();
  if (task < 0) die("cannot fork");
  if (task == 0) {
    setpgid(0, 0);
    unblock_all();
    exec_confined();
  }
  // init keeps only what forwarding a signal to a task of another user needs
  bound_caps(1ULL << CAP_KILL);
  limit_caps(1ULL << CAP_KILL);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  supervise(task, 1, &set);
}

/** The task's init: PID itself when it is PID 1 of a child namespace, else PID's first child (PID is the outer). */
static pid_t init_of(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "re");
  if (!f) dief("no such task process", path);
  int fields = 0;
  const char *last = "";
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "NSpid:", 6) != 0) continue;
    for (char *tok = strtok(line + 6, " \t\n"); tok; tok = strtok(NULL, " \t\n")) fields++, last = tok;
    break;
  }
  int is_init = fields >= 2 && strcmp(last, "1") == 0;
  fclose(f);
  if (is_init) return pid;
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
  f = fopen(path, "re");
  long child = 0;
  if (!f || fscanf(f, "%ld", &child) != 1) dief("no init under", path);
  fclose(f);
  return (pid_t)child;
}

/** Whether a process has a child: init forks the task only once it made the task's mounts. */
static int has_child(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
  FILE *f = fopen(path, "re");
  long child = 0;
  int found = f && fscanf(f, "%ld", &child) == 1;
  if (f) fclose(f);
  return found;
}

static void enter(void) {
  static const char *kinds[] = {"ipc", "uts", "net", "pid", "mnt"};
  int fds[5];
  if (opt.target <= 0) usage("enter needs --target PID");
  pid_t init = init_of(opt.target);
  // entered before init made its mounts, a command would see the node's /tmp, writable: wait (1 s at most)
  for (int i = 0; !opt.container && !has_child(init); i++) {
    if (i == 100) {
      fprintf(stderr, "vipmesh-confine: the task is still starting\n");
      exit(FAILED);
    }
    usleep(10000);
  }
  read_task_env(init);
  char path[64];
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "/proc/%d/ns/%s", init, kinds[i]);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) dief("cannot open", path);
  }
  // joining a mount namespace puts us at its root mount; the task's root may be below it (a chroot)
  snprintf(path, sizeof path, "/proc/%d/root", init);
  int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) dief("cannot open", path);
  join_cgroups();
  for (int i = 0; i < 5; i++) {
    if (setns(fds[i], 0) < 0) dief("cannot enter the task's namespace", kinds[i]);
    close(fds[i]);
  }
  if (fchdir(root) < 0 || chroot(".") < 0 || chdir("/") < 0) die("cannot take the task's root");
  close(root);
  sigset_t set = waited();
  sigprocmask(SIG_BLOCK, &set, NULL);
  pid_t child = fork();
  if (child < 0) die("cannot fork");
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); // a health check killed at its timeout takes its command along
    unblock_all();
    exec_confined();
  }
  // the terminal's ^C and ^\ reach the command itself, in the same process group: not forwarded twice
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  sigset_t terminal;
  sigemptyset(&terminal);
  sigaddset(&terminal, SIGINT);
  sigaddset(&terminal, SIGQUIT);
  sigprocmask(SIG_UNBLOCK, &terminal, NULL);
  sigdelset(&set, SIGINT);
  sigdelset(&set, SIGQUIT);
  supervise(child, 0, &set);
}

/**
 * A container's log shim: containerd's shim runs a binary:// log URI's
 * program with the query's key/value pairs as its arguments (in no set
 * order), CONTAINER_ID in its environment, the container's stdout and stderr
 * as fds 3 and 4, and fd 5 to close once it is ready. The lines go to --log
 * as run's shim writes them, until both streams end.
 */
static void container_log(int argc, char **argv) {
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 == argc) usage("a log option lacks its value");
    const char *v = argv[i + 1];
    if (strcmp(argv[i], "--log") == 0) opt.log = v;
    else if (strcmp(argv[i], "--log-max-bytes") == 0) {
      char *end;
      opt.log_max = strtoll(v, &end, 10);
      if (!*v || *end || opt.log_max < 0) usage("--log-max-bytes needs a number of bytes");
    } else usage(argv[i]);
  }
  if (!opt.log) usage("a container's log shim needs --log FILE");
  signal(SIGPIPE, SIG_IGN);
  // containerd closes the pipes, then sends SIGTERM: the output still in them is read to EOF first
  signal(SIGTERM, SIG_IGN);
  const char *failed = try_open_log();
  if (failed) {
    // the container still runs, its output read and dropped (else it would die of SIGPIPE, unexplained)
    fprintf(stderr, "vipmesh-confine: %s %s: %s (the container's output is dropped)\n", failed, opt.log, strerror(errno));
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 1) < 0) die("cannot open /dev/null");
    close(null);
    opt.log_max = 0; // nothing to rotate
  }
  task_out.fd = 3;
  task_err.fd = 4;
  close(5); // ready: the shim starts the container
  while (task_out.fd >= 0 || task_err.fd >= 0) {
    struct pollfd p[2] = {{task_out.fd, POLLIN, 0}, {task_err.fd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR || errno == ENOMEM) continue;
      die("cannot poll");
    }
    if (p[0].revents && task_out.fd >= 0) read_stream(&task_out);
    if (p[1].revents && task_err.fd >= 0) read_stream(&task_err);
    flush_log();
  }
  flush_log();
  exit(0);
}

int main(int argc, char **argv) {
  // nothing in a task may ptrace or read the memory of this process while it holds the node's privileges
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (argc < 2) usage("no mode");
  if (getenv("CONTAINER_ID") && strncmp(argv[1], "--", 2) == 0) container_log(argc, argv);
  parse(argc, argv);
  if (strcmp(argv[1], "run") == 0) {
    if (!opt.home || !opt.netns || strchr(opt.netns, '/')) usage("run needs --home DIR and --netns NAME");
    run();
  } else if (strcmp(argv[1], "enter") == 0) {
    enter();
  }
  usage("the mode is run or enter");
}
