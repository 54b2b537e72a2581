/* crashsim: an LD_PRELOAD shim that emulates a power loss (tests/faults/powerloss.py).
 *
 * It interposes the libc calls that change files (open/creat with write access or O_CREAT,
 * fopen for writing, mkstemp, write/pwrite/writev, ftruncate/truncate, copy_file_range,
 * sendfile, chmod family, mkdir, rmdir, unlink, remove, rename family, link, symlink) and the
 * calls that make changes durable (fsync, fdatasync, syncfs, sync). Only paths under the
 * directories in CRASHSIM_ROOT (colon-separated, canonical) are tracked. Every tracked call
 * is one numbered operation; processes started from a tracked process (hooks) share the
 * numbering through a lock file, so a crash can land inside a hook as well.
 *
 * Each tracked call appends an undo record to CRASHSIM_DIR/journal (hard links to files it
 * unlinks or replaces go to CRASHSIM_DIR/stash, overwritten bytes to CRASHSIM_DIR/undo). The
 * model is pessimistic (POSIX, not ext4's practice):
 *   - a file's data, size and mode are durable only after fsync/fdatasync of that file, or a
 *     syncfs of its filesystem, or sync;
 *   - a directory entry change (create, mkdir, symlink, link, unlink, rmdir, rename) is
 *     durable only after an fsync of a directory it changed (for a rename: either one), or a
 *     syncfs/sync.
 * A power loss undoes every change that is not durable, newest first: first file contents
 * (truncated to the size they had, overwritten bytes put back, modes reset), then directory
 * entries (creations removed, unlinked files and rename targets put back from the stash,
 * renames reversed, removed directories re-created).
 *
 * Environment:
 *   CRASHSIM_ROOT=DIR[:DIR...]  tracked trees (required; without it the shim does nothing)
 *   CRASHSIM_DIR=DIR            journal, undo data and stash; must be on the same filesystem
 *                               as the tracked trees (hard links) and outside them
 *   CRASHSIM_AT=N               right before operation N: roll back what is not durable, then
 *                               SIGKILL every process of the session (as a power loss would)
 *   CRASHSIM_LOG=FILE           one line per operation: "N<TAB>PID<TAB>call<TAB>path[<TAB>path]";
 *                               at a crash or power-off, one line per recorded change of each
 *                               operation, "undone" or "durable<TAB>N<TAB>kind<TAB>path" (kind:
 *                               N new name, U unlink, D rmdir, R rename, W data, O opened for
 *                               writing, M mode), and a "rollback" summary line
 *   CRASHSIM_POWEROFF=1         in whatever process loads the shim: roll back the journal now
 *                               and exit 0 (a power loss after the tracked processes ended)
 *
 * Not seen: writes through glibc's own stdio (fwrite, printf to a file) and mmap. A file
 * opened for writing by a tracked call is rolled back to its size at that open when it is not
 * durable, which covers appends and truncating redirections (`cmd > file`) of such writers,
 * not overwrites in the middle of an existing file.
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS /* both open and open64 are defined here, each under its own name */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROOTS 16
#define FD_CACHE 4096

/* The real libc functions, looked up lazily (a wrapper can run before our constructor). */
#define REAL(name) real_##name
#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
#define LOAD(name)                                                            \
    do {                                                                      \
        if (!real_##name) *(void**)(&real_##name) = dlsym(RTLD_NEXT, #name); \
    } while (0)

DECLARE_REAL(int, open, const char*, int, ...);
DECLARE_REAL(int, open64, const char*, int, ...);
DECLARE_REAL(int, __open_2, const char*, int);
DECLARE_REAL(int, __open64_2, const char*, int);
DECLARE_REAL(int, openat, int, const char*, int, ...);
DECLARE_REAL(int, openat64, int, const char*, int, ...);
DECLARE_REAL(int, __openat_2, int, const char*, int);
DECLARE_REAL(int, __openat64_2, int, const char*, int);
DECLARE_REAL(int, creat, const char*, mode_t);
DECLARE_REAL(int, creat64, const char*, mode_t);
DECLARE_REAL(FILE*, fopen, const char*, const char*);
DECLARE_REAL(FILE*, fopen64, const char*, const char*);
DECLARE_REAL(int, mkstemp, char*);
DECLARE_REAL(int, mkstemp64, char*);
DECLARE_REAL(int, mkostemp, char*, int);
DECLARE_REAL(int, mkostemp64, char*, int);
DECLARE_REAL(ssize_t, write, int, const void*, size_t);
DECLARE_REAL(ssize_t, pwrite, int, const void*, size_t, off_t);
DECLARE_REAL(ssize_t, pwrite64, int, const void*, size_t, off64_t);
DECLARE_REAL(ssize_t, writev, int, const struct iovec*, int);
DECLARE_REAL(int, ftruncate, int, off_t);
DECLARE_REAL(int, ftruncate64, int, off64_t);
DECLARE_REAL(int, truncate, const char*, off_t);
DECLARE_REAL(int, truncate64, const char*, off64_t);
DECLARE_REAL(ssize_t, copy_file_range, int, off64_t*, int, off64_t*, size_t, unsigned);
DECLARE_REAL(ssize_t, sendfile, int, int, off_t*, size_t);
DECLARE_REAL(ssize_t, sendfile64, int, int, off64_t*, size_t);
DECLARE_REAL(int, fchmod, int, mode_t);
DECLARE_REAL(int, chmod, const char*, mode_t);
DECLARE_REAL(int, fchmodat, int, const char*, mode_t, int);
DECLARE_REAL(int, fsync, int);
DECLARE_REAL(int, fdatasync, int);
DECLARE_REAL(int, syncfs, int);
DECLARE_REAL(void, sync, void);
DECLARE_REAL(int, rename, const char*, const char*);
DECLARE_REAL(int, renameat, int, const char*, int, const char*);
DECLARE_REAL(int, renameat2, int, const char*, int, const char*, unsigned);
DECLARE_REAL(int, unlink, const char*);
DECLARE_REAL(int, unlinkat, int, const char*, int);
DECLARE_REAL(int, remove, const char*);
DECLARE_REAL(int, mkdir, const char*, mode_t);
DECLARE_REAL(int, mkdirat, int, const char*, mode_t);
DECLARE_REAL(int, rmdir, const char*);
DECLARE_REAL(int, symlink, const char*, const char*);
DECLARE_REAL(int, symlinkat, const char*, int, const char*);
DECLARE_REAL(int, link, const char*, const char*);
DECLARE_REAL(int, linkat, int, const char*, int, const char*, int);
DECLARE_REAL(int, close, int);

static void load_all(void) {
    LOAD(open); LOAD(open64); LOAD(__open_2); LOAD(__open64_2); LOAD(openat); LOAD(openat64);
    LOAD(__openat_2); LOAD(__openat64_2); LOAD(creat); LOAD(creat64); LOAD(fopen); LOAD(fopen64);
    LOAD(mkstemp); LOAD(mkstemp64); LOAD(mkostemp); LOAD(mkostemp64);
    LOAD(write); LOAD(pwrite); LOAD(pwrite64); LOAD(writev); LOAD(ftruncate); LOAD(ftruncate64);
    LOAD(truncate); LOAD(truncate64); LOAD(copy_file_range); LOAD(sendfile); LOAD(sendfile64);
    LOAD(fchmod); LOAD(chmod); LOAD(fchmodat); LOAD(fsync); LOAD(fdatasync); LOAD(syncfs); LOAD(sync);
    LOAD(rename); LOAD(renameat); LOAD(renameat2); LOAD(unlink); LOAD(unlinkat); LOAD(remove);
    LOAD(mkdir); LOAD(mkdirat); LOAD(rmdir); LOAD(symlink); LOAD(symlinkat); LOAD(link); LOAD(linkat);
    LOAD(close);
}

/* Shared between the processes of one run (MAP_SHARED over CRASHSIM_DIR/ctl). */
struct ctl {
    uint64_t counter; /* operations so far */
    uint32_t crashed; /* set once a crash has rolled back: later operations die at once */
    uint32_t stash_seq;
};

struct fd_entry {
    int valid, tracked;
    dev_t dev;
    ino_t ino;
    char* path;
};

static struct {
    int active;
    char* roots[MAX_ROOTS];
    size_t root_len[MAX_ROOTS];
    dev_t root_dev[MAX_ROOTS];
    int nroots;
    char dir[PATH_MAX];
    size_t dir_len;
    char log_path[PATH_MAX];
    unsigned long long at;
    pid_t owner; /* the process the descriptors below belong to */
    int ctl_fd, journal_fd, undo_fd, log_fd;
    dev_t ctl_dev;
    ino_t ctl_ino;
    struct ctl* ctl;
    struct fd_entry fds[FD_CACHE];
} S = {.ctl_fd = -1, .journal_fd = -1, .undo_fd = -1, .log_fd = -1};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int in_shim;

/* ---- small helpers ------------------------------------------------------------------- */

static void die(const char* what) {
    char buf[PATH_MAX + 128];
    int n = snprintf(buf, sizeof buf, "crashsim: %s: %s\n", what, strerror(errno));
    if (n > 0) REAL(write)(2, buf, (size_t)n);
    abort();
}

static void write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = REAL(write)(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("cannot write its journal");
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Lexically normalised absolute path of (dirfd, path) into out; 0 when it cannot be formed. */
static int resolve(int dirfd, const char* path, char* out) {
    char tmp[PATH_MAX * 2];
    if (path == NULL) return 0;
    if (path[0] == '/') {
        if (strlen(path) >= PATH_MAX) return 0;
        strcpy(tmp, path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (getcwd(base, sizeof base) == NULL) return 0;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n <= 0) return 0;
            base[n] = '\0';
        }
        if (snprintf(tmp, sizeof tmp, "%s/%s", base, path) >= (int)sizeof tmp) return 0;
    }
    /* Collapse "//", "." and "..". */
    size_t o = 0;
    const char* p = tmp;
    out[0] = '\0';
    while (*p) {
        while (*p == '/') ++p;
        if (!*p) break;
        const char* e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 1 && p[0] == '.') {
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/') --o;
            if (o > 0) --o;
            out[o] = '\0';
        } else {
            if (o + 1 + len >= PATH_MAX) return 0;
            out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
            out[o] = '\0';
        }
        p += len;
    }
    if (o == 0) strcpy(out, "/");
    return 1;
}

/* strlcpy: copies what fits, always terminated. */
static void scopy(char* dst, size_t cap, const char* src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int under(const char* path, const char* root, size_t len) {
    return strncmp(path, root, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static int tracked_path(const char* abs) {
    if (!S.active) return 0;
    if (under(abs, S.dir, S.dir_len)) return 0;
    for (int i = 0; i < S.nroots; ++i)
        if (under(abs, S.roots[i], S.root_len[i])) return 1;
    return 0;
}

static int tracked_dev(dev_t dev) {
    for (int i = 0; i < S.nroots; ++i)
        if (S.root_dev[i] == dev) return 1;
    return 0;
}

/* The directory holding abs's name, and its identity (0/0 when it cannot be stat'ed). */
static void parent_of(const char* abs, char* parent, dev_t* dev, ino_t* ino) {
    strcpy(parent, abs);
    char* slash = strrchr(parent, '/');
    if (slash == parent) parent[1] = '\0';
    else if (slash) *slash = '\0';
    struct stat st;
    if (stat(parent, &st) == 0) {
        *dev = st.st_dev;
        *ino = st.st_ino;
    } else {
        *dev = 0;
        *ino = 0;
    }
}

/* Journal fields are tab-separated: paths are %-escaped (tab, newline, '%', controls). */
static void escape(const char* s, char* out, size_t cap) {
    size_t o = 0;
    for (; *s && o + 4 < cap; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c == '%' || c == 0x7f) o += (size_t)snprintf(out + o, cap - o, "%%%02x", c);
        else out[o++] = (char)c;
    }
    out[o] = '\0';
}

static void unescape(char* s) {
    char* o = s;
    for (char* p = s; *p; ++p) {
        if (*p == '%' && p[1] && p[2]) {
            char hex[3] = {p[1], p[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* ---- shared state -------------------------------------------------------------------- */

static int open_internal(const char* name, int flags) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/%s", S.dir, name);
    int fd = REAL(open)(p, flags | O_CLOEXEC, 0600);
    if (fd < 0) die(p);
    /* Far from the descriptors the program uses (some code expects 3, 4, ... to be free). */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
    if (high >= 0) {
        REAL(close)(fd);
        fd = high;
    }
    return fd;
}

static int is_internal_fd(int fd) {
    return fd >= 0 && (fd == S.ctl_fd || fd == S.journal_fd || fd == S.undo_fd || fd == S.log_fd);
}

/* (Re)opens the shared files in this process: after a fork the lock file's open file
 * description is shared with the parent, so flock would not exclude it. */
static void ensure_open(void) {
    struct stat st;
    /* The number may have been closed behind our back (close_range) and reused. */
    if (S.owner == getpid() && S.ctl_fd >= 0 && fstat(S.ctl_fd, &st) == 0 && st.st_dev == S.ctl_dev &&
        st.st_ino == S.ctl_ino)
        return;
    mkdir(S.dir, 0700);
    char stash[PATH_MAX + 16];
    snprintf(stash, sizeof stash, "%s/stash", S.dir);
    mkdir(stash, 0700);
    S.ctl_fd = open_internal("ctl", O_RDWR | O_CREAT);
    if (fstat(S.ctl_fd, &st) != 0) die("cannot stat ctl");
    S.ctl_dev = st.st_dev;
    S.ctl_ino = st.st_ino;
    if (st.st_size < (off_t)sizeof(struct ctl) && REAL(ftruncate)(S.ctl_fd, sizeof(struct ctl)) != 0)
        die("cannot size ctl");
    void* m = mmap(NULL, sizeof(struct ctl), PROT_READ | PROT_WRITE, MAP_SHARED, S.ctl_fd, 0);
    if (m == MAP_FAILED) die("cannot map ctl");
    S.ctl = m;
    S.journal_fd = open_internal("journal", O_WRONLY | O_CREAT | O_APPEND);
    S.undo_fd = open_internal("undo", O_RDWR | O_CREAT);
    S.log_fd = S.log_path[0] ? REAL(open)(S.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    if (S.log_fd >= 0) {
        int high = fcntl(S.log_fd, F_DUPFD_CLOEXEC, 900);
        if (high >= 0) {
            REAL(close)(S.log_fd);
            S.log_fd = high;
        }
    }
    S.owner = getpid();
    for (int i = 0; i < FD_CACHE; ++i) S.fds[i].valid = 0;
}

static void lock_shared(void) {
    pthread_mutex_lock(&mu);
    ensure_open();
    while (flock(S.ctl_fd, LOCK_EX) != 0)
        if (errno != EINTR) die("cannot lock ctl");
}

static void unlock_shared(void) {
    flock(S.ctl_fd, LOCK_UN);
    pthread_mutex_unlock(&mu);
}

static void logf_(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char* fmt, ...) {
    if (S.log_fd < 0) return;
    char buf[3 * PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    write_all(S.log_fd, buf, (size_t)n);
}

/* One journal record: "N<TAB>TYPE<TAB>fields...". */
static unsigned long long cur_op;
static void journal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void journal(const char* fmt, ...) {
    char buf[3 * PATH_MAX + 256];
    int n = snprintf(buf, sizeof buf, "%llu\t", cur_op);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)(n + m) >= sizeof buf - 1) die("journal record too long");
    n += m;
    buf[n++] = '\n';
    write_all(S.journal_fd, buf, (size_t)n);
}

/* Saves bytes [off, off+len) of the file open as fd; returns their offset in the undo file. */
static off_t save_bytes(int fd, off_t off, off_t len) {
    off_t at = lseek(S.undo_fd, 0, SEEK_END);
    if (len <= 0) return at;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int rfd = REAL(open)(link, O_RDONLY | O_CLOEXEC);  /* fd may be write-only */
    if (rfd < 0) die("cannot reopen a file to save its bytes");
    char buf[65536];
    off_t done = 0;
    while (done < len) {
        size_t want = (size_t)(len - done) < sizeof buf ? (size_t)(len - done) : sizeof buf;
        ssize_t r = pread(rfd, buf, want, off + done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (REAL(pwrite)(S.undo_fd, buf, (size_t)r, at + done) != r) die("cannot save undo bytes");
        done += r;
    }
    REAL(close)(rfd);
    return at;
}

static void crash(const char* call, const char* p1, const char* p2);
static void rollback(void);

/* Starts tracked operation: takes the lock, numbers it, crashes first when it is the one. */
static void enter(const char* call, const char* p1, const char* p2) {
    in_shim = 1;
    lock_shared();
    if (S.ctl->crashed) {
        unlock_shared();
        kill(getpid(), SIGKILL);
    }
    cur_op = ++S.ctl->counter;
    if (S.at != 0 && cur_op == S.at) crash(call, p1, p2);
    char e1[PATH_MAX * 3], e2[PATH_MAX * 3];
    escape(p1 ? p1 : "", e1, sizeof e1);
    escape(p2 ? p2 : "", e2, sizeof e2);
    logf_("%llu\t%d\t%s\t%s%s%s\n", cur_op, (int)getpid(), call, e1, p2 ? "\t" : "", p2 ? e2 : "");
}

static void leave(void) {
    unlock_shared();
    in_shim = 0;
}

/* Identity and tracking of a descriptor (cached by number, checked by dev/ino); the path it
 * was opened by goes to out (PATH_MAX bytes). */
static int fd_tracked(int fd, struct stat* st, char* out) {
    out[0] = '\0';
    if (fd < 0 || is_internal_fd(fd) || fstat(fd, st) != 0) return 0;
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) return 0;
    pthread_mutex_lock(&mu);
    struct fd_entry* e = fd < FD_CACHE && S.owner == getpid() ? &S.fds[fd] : NULL;
    int t;
    if (e && e->valid && e->dev == st->st_dev && e->ino == st->st_ino) {
        scopy(out, PATH_MAX, e->path);
        t = e->tracked;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, out, PATH_MAX - 1);
        if (n <= 0) {
            pthread_mutex_unlock(&mu);
            out[0] = '\0';
            return 0;
        }
        out[n] = '\0';
        const char* del = " (deleted)";
        if ((size_t)n > strlen(del) && strcmp(out + n - strlen(del), del) == 0) out[n - strlen(del)] = '\0';
        t = tracked_path(out);
        if (e) {
            free(e->path);
            e->path = strdup(out);
            e->dev = st->st_dev;
            e->ino = st->st_ino;
            e->tracked = t;
            e->valid = e->path != NULL;
        }
    }
    pthread_mutex_unlock(&mu);
    return t;
}

/* ---- recording ----------------------------------------------------------------------- */

static void rec_inode(char type, const struct stat* st, const char* fields, const char* path) {
    char e[PATH_MAX * 3];
    escape(path, e, sizeof e);
    journal("%c\t%llu\t%llu\t%s\t%s", type, (unsigned long long)st->st_dev, (unsigned long long)st->st_ino, fields,
            e);
}

/* A change of the bytes [off, off+len) of the open file fd (before it happens): saves what is
 * overwritten and records the old size, so the undo is "truncate to old size, put bytes back". */
static void rec_data(int fd, const struct stat* st, off_t off, off_t len, const char* path) {
    off_t save_len = 0;
    if (off < st->st_size) save_len = (len < 0 || off + len > st->st_size) ? st->st_size - off : len;
    off_t at = save_bytes(fd, off, save_len);
    char f[128];
    snprintf(f, sizeof f, "%lld\t%lld\t%lld\t%lld", (long long)off, (long long)st->st_size, (long long)at,
             (long long)save_len);
    rec_inode('W', st, f, path);
}

static void rec_entry(char type, const char* abs, const char* fields) {
    char parent[PATH_MAX], e[PATH_MAX * 3];
    dev_t d;
    ino_t i;
    parent_of(abs, parent, &d, &i);
    escape(abs, e, sizeof e);
    journal("%c\t%llu\t%llu\t%s\t%s", type, (unsigned long long)d, (unsigned long long)i, fields, e);
}

/* A hard link to abs in the stash (before abs is unlinked or replaced); name in out ("-" when
 * abs does not exist or cannot be linked: then that change cannot be undone). */
static void stash_link(const char* abs, char* out, size_t cap) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/stash/%llu-%u", S.dir, cur_op, S.ctl->stash_seq++);
    if (REAL(linkat)(AT_FDCWD, abs, AT_FDCWD, p, 0) != 0) {
        if (errno != ENOENT) logf_("stash\t%llu\tcannot link %s: %s\n", cur_op, abs, strerror(errno));
        snprintf(out, cap, "-");
        return;
    }
    escape(p, out, cap);
}

static void unstash(const char* stashed) {
    if (strcmp(stashed, "-") == 0) return;
    char p[PATH_MAX];
    scopy(p, sizeof p, stashed);
    unescape(p);
    REAL(unlink)(p);
}

/* ---- wrappers: open family ----------------------------------------------------------- */

static int wants_write(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

static int call_open(int dirfd, const char* path, int flags, mode_t mode, void* real, int kind) {
    /* kind 0: open(path, flags, mode), 1: openat(dirfd, ...), 2: __open_2, 3: __openat_2 */
    switch (kind) {
    case 0: return ((int (*)(const char*, int, ...))real)(path, flags, mode);
    case 1: return ((int (*)(int, const char*, int, ...))real)(dirfd, path, flags, mode);
    case 2: return ((int (*)(const char*, int))real)(path, flags);
    default: return ((int (*)(int, const char*, int))real)(dirfd, path, flags);
    }
}

static int open_tracked(int dirfd, const char* path, int flags, mode_t mode, void* real, int kind, const char* call) {
    char abs[PATH_MAX];
    if (!S.active || in_shim || !wants_write(flags) || (flags & O_TMPFILE) == O_TMPFILE ||
        !resolve(dirfd, path, abs) || !tracked_path(abs))
        return call_open(dirfd, path, flags, mode, real, kind);
    enter(call, abs, NULL);
    struct stat before;
    int existed = lstat(abs, &before) == 0;
    int truncates = existed && S_ISREG(before.st_mode) && (flags & O_TRUNC) && before.st_size > 0 &&
                    (flags & O_ACCMODE) != O_RDONLY;
    off_t saved_at = 0;
    if (truncates) {
        int rfd = REAL(open)(abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (rfd >= 0) {
            saved_at = save_bytes(rfd, 0, before.st_size);
            REAL(close)(rfd);
        }
    }
    int fd = call_open(dirfd, path, flags, mode, real, kind);
    int err = errno;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0) {
            if (!existed) rec_entry('N', abs, "f");
            if (truncates) {
                char f[128];
                snprintf(f, sizeof f, "0\t%lld\t%lld\t%lld", (long long)before.st_size, (long long)saved_at,
                         (long long)before.st_size);
                rec_inode('W', &st, f, abs);
            }
            if (S_ISREG(st.st_mode) && (flags & O_ACCMODE) != O_RDONLY) {
                char f[32];
                snprintf(f, sizeof f, "%lld", (long long)st.st_size);
                rec_inode('O', &st, f, abs);
            }
        }
    }
    leave();
    errno = err;
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

/* Each variant is its own exported symbol and forwards to its own libc function. */
#define DEFINE_OPEN(name)                                                              \
    int name(const char* path, int flags, ...) {                                       \
        va_list ap;                                                                    \
        va_start(ap, flags);                                                           \
        mode_t m = mode_arg(flags, ap);                                                \
        va_end(ap);                                                                    \
        LOAD(name);                                                                    \
        return open_tracked(AT_FDCWD, path, flags, m, (void*)REAL(name), 0, "open");   \
    }
#define DEFINE_OPENAT(name)                                                            \
    int name(int dirfd, const char* path, int flags, ...) {                            \
        va_list ap;                                                                    \
        va_start(ap, flags);                                                           \
        mode_t m = mode_arg(flags, ap);                                                \
        va_end(ap);                                                                    \
        LOAD(name);                                                                    \
        return open_tracked(dirfd, path, flags, m, (void*)REAL(name), 1, "openat");    \
    }
/* The _FORTIFY_SOURCE entry points (no mode argument: never O_CREAT). */
#define DEFINE_OPEN_2(name)                                                            \
    int name(const char* path, int flags) {                                            \
        LOAD(name);                                                                    \
        return open_tracked(AT_FDCWD, path, flags, 0, (void*)REAL(name), 2, "open");   \
    }
#define DEFINE_OPENAT_2(name)                                                          \
    int name(int dirfd, const char* path, int flags) {                                 \
        LOAD(name);                                                                    \
        return open_tracked(dirfd, path, flags, 0, (void*)REAL(name), 3, "openat");    \
    }

DEFINE_OPEN(open)
DEFINE_OPEN(open64)
DEFINE_OPENAT(openat)
DEFINE_OPENAT(openat64)
DEFINE_OPEN_2(__open_2)
DEFINE_OPEN_2(__open64_2)
DEFINE_OPENAT_2(__openat_2)
DEFINE_OPENAT_2(__openat64_2)

int creat(const char* path, mode_t mode) {
    LOAD(open);
    return open_tracked(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, (void*)REAL(open), 0, "creat");
}

int creat64(const char* path, mode_t mode) {
    LOAD(open64);
    return open_tracked(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, (void*)REAL(open64), 0, "creat");
}

/* fopen for writing goes through open_tracked (glibc's own open inside fopen is not
 * interposable); the stdio writes that follow are not seen (see the header). */
static FILE* fopen_tracked(const char* path, const char* mode, FILE* (*real)(const char*, const char*)) {
    char abs[PATH_MAX];
    if (!S.active || in_shim || mode == NULL || (mode[0] == 'r' && !strchr(mode, '+')) ||
        !resolve(AT_FDCWD, path, abs) || !tracked_path(abs))
        return real(path, mode);
    int flags = strchr(mode, '+') ? O_RDWR : O_WRONLY;
    if (mode[0] == 'w') flags |= O_CREAT | O_TRUNC;
    if (mode[0] == 'a') flags |= O_CREAT | O_APPEND;
    if (strchr(mode, 'x')) flags |= O_EXCL;
    if (strchr(mode, 'e')) flags |= O_CLOEXEC;
    LOAD(open);
    int fd = open_tracked(AT_FDCWD, path, flags, 0666, (void*)REAL(open), 0, "fopen");
    if (fd < 0) return NULL;
    FILE* f = fdopen(fd, mode);
    if (!f) {
        int err = errno;
        REAL(close)(fd);
        errno = err;
    }
    return f;
}

FILE* fopen(const char* path, const char* mode) {
    LOAD(fopen);
    return fopen_tracked(path, mode, REAL(fopen));
}

FILE* fopen64(const char* path, const char* mode) {
    LOAD(fopen64);
    return fopen_tracked(path, mode, REAL(fopen64));
}

/* mkstemp creates through glibc's internal open: record the creation after the fact. */
static int mkstemp_tracked(char* tmpl, int flags, int kind) {
    char abs[PATH_MAX];
    LOAD(mkstemp); LOAD(mkstemp64); LOAD(mkostemp); LOAD(mkostemp64);
    int do_track = S.active && !in_shim && resolve(AT_FDCWD, tmpl, abs) && tracked_path(abs);
    if (do_track) enter("mkstemp", abs, NULL);
    int fd = kind == 0 ? REAL(mkstemp)(tmpl) : kind == 1 ? REAL(mkstemp64)(tmpl)
             : kind == 2 ? REAL(mkostemp)(tmpl, flags) : REAL(mkostemp64)(tmpl, flags);
    int err = errno;
    if (do_track) {
        struct stat st;
        if (fd >= 0 && resolve(AT_FDCWD, tmpl, abs) && fstat(fd, &st) == 0) {
            rec_entry('N', abs, "f");
            rec_inode('O', &st, "0", abs);
        }
        leave();
    }
    errno = err;
    return fd;
}

int mkstemp(char* t) { return mkstemp_tracked(t, 0, 0); }
int mkstemp64(char* t) { return mkstemp_tracked(t, 0, 1); }
int mkostemp(char* t, int flags) { return mkstemp_tracked(t, flags, 2); }
int mkostemp64(char* t, int flags) { return mkstemp_tracked(t, flags, 3); }

/* ---- wrappers: data ------------------------------------------------------------------ */

/* Common path of every call that changes bytes of a file: off < 0 means "the current offset
 * (or the end with O_APPEND)"; len < 0 means "to the end" (truncations). */
#define DATA_OP(call, fd, off_expr, len_expr, do_call)                                         \
    do {                                                                                     \
        struct stat st_;                                                                     \
        char p_[PATH_MAX];                                                                   \
        if (!S.active || in_shim || !fd_tracked((fd), &st_, p_) || !S_ISREG(st_.st_mode))    \
            return do_call;                                                                  \
        enter(call, p_, NULL);                                                               \
        fstat((fd), &st_);                                                                   \
        off_t off_ = (off_expr);                                                             \
        if (off_ < 0) {                                                                      \
            int fl_ = fcntl((fd), F_GETFL);                                                  \
            off_ = (fl_ >= 0 && (fl_ & O_APPEND)) ? st_.st_size : lseek((fd), 0, SEEK_CUR);  \
        }                                                                                    \
        rec_data((fd), &st_, off_, (len_expr), p_);                                          \
        __typeof__(do_call) r_ = do_call;                                                    \
        int err_ = errno;                                                                    \
        leave();                                                                             \
        errno = err_;                                                                        \
        return r_;                                                                           \
    } while (0)

static off_t iov_len(const struct iovec* iov, int n) {
    off_t t = 0;
    for (int i = 0; i < n; ++i) t += (off_t)iov[i].iov_len;
    return t;
}

ssize_t write(int fd, const void* buf, size_t n) {
    LOAD(write);
    DATA_OP("write", fd, -1, (off_t)n, REAL(write)(fd, buf, n));
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
    LOAD(pwrite);
    DATA_OP("pwrite", fd, off, (off_t)n, REAL(pwrite)(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
    LOAD(pwrite64);
    DATA_OP("pwrite", fd, off, (off_t)n, REAL(pwrite64)(fd, buf, n, off));
}

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
    LOAD(writev);
    DATA_OP("writev", fd, -1, iov_len(iov, cnt), REAL(writev)(fd, iov, cnt));
}

int ftruncate(int fd, off_t len) {
    LOAD(ftruncate);
    DATA_OP("ftruncate", fd, len, -1, REAL(ftruncate)(fd, len));
}

int ftruncate64(int fd, off64_t len) {
    LOAD(ftruncate64);
    DATA_OP("ftruncate", fd, len, -1, REAL(ftruncate64)(fd, len));
}

ssize_t copy_file_range(int in, off64_t* in_off, int out, off64_t* out_off, size_t n, unsigned flags) {
    LOAD(copy_file_range);
    DATA_OP("copy_file_range", out, out_off ? *out_off : -1, (off_t)n,
            REAL(copy_file_range)(in, in_off, out, out_off, n, flags));
}

ssize_t sendfile(int out, int in, off_t* off, size_t n) {
    LOAD(sendfile);
    DATA_OP("sendfile", out, -1, (off_t)n, REAL(sendfile)(out, in, off, n));
}

ssize_t sendfile64(int out, int in, off64_t* off, size_t n) {
    LOAD(sendfile64);
    DATA_OP("sendfile", out, -1, (off_t)n, REAL(sendfile64)(out, in, off, n));
}

static int truncate_path(const char* path, off_t len, int (*real)(int, off_t)) {
    char abs[PATH_MAX];
    LOAD(truncate);
    if (!S.active || in_shim || !resolve(AT_FDCWD, path, abs) || !tracked_path(abs)) return REAL(truncate)(path, len);
    LOAD(open);
    int fd = REAL(open)(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = real(fd, len);  /* through the ftruncate wrapper: one tracked operation */
    int err = errno;
    REAL(close)(fd);
    errno = err;
    return r;
}

int truncate(const char* path, off_t len) { return truncate_path(path, len, ftruncate); }
int truncate64(const char* path, off64_t len) { return truncate_path(path, len, ftruncate); }

/* Mode changes are inode metadata: durable with the inode, like its data. */
static int chmod_common(int fd, int dirfd, const char* path, mode_t mode, int flags, int kind) {
    LOAD(fchmod); LOAD(chmod); LOAD(fchmodat);
#define CALL_CHMOD() (kind == 0 ? REAL(fchmod)(fd, mode) : kind == 1 ? REAL(chmod)(path, mode) \
                                                                      : REAL(fchmodat)(dirfd, path, mode, flags))
    if (!S.active || in_shim) return CALL_CHMOD();
    struct stat st;
    char abs[PATH_MAX];
    if (kind == 0) {
        if (!fd_tracked(fd, &st, abs)) return CALL_CHMOD();
    } else {
        if (!resolve(kind == 1 ? AT_FDCWD : dirfd, path, abs) || !tracked_path(abs)) return CALL_CHMOD();
        int r = (flags & AT_SYMLINK_NOFOLLOW) ? lstat(abs, &st) : stat(abs, &st);
        if (r != 0 || S_ISLNK(st.st_mode)) return CALL_CHMOD();
    }
    enter("chmod", abs, NULL);
    char f[32];
    snprintf(f, sizeof f, "%o", (unsigned)(st.st_mode & 07777));
    int r = CALL_CHMOD();
    int err = errno;
    if (r == 0) rec_inode('M', &st, f, abs);
    leave();
    errno = err;
    return r;
#undef CALL_CHMOD
}

int fchmod(int fd, mode_t mode) { return chmod_common(fd, AT_FDCWD, NULL, mode, 0, 0); }
int chmod(const char* path, mode_t mode) { return chmod_common(-1, AT_FDCWD, path, mode, 0, 1); }
int fchmodat(int dirfd, const char* path, mode_t mode, int flags) {
    return chmod_common(-1, dirfd, path, mode, flags, 2);
}

/* ---- wrappers: durability ------------------------------------------------------------ */

static int sync_fd(int fd, int data_only) {
    LOAD(fsync); LOAD(fdatasync);
    struct stat st;
    char abs[PATH_MAX];
    if (!S.active || in_shim || fd < 0 || is_internal_fd(fd) || fstat(fd, &st) != 0 ||
        !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) || !tracked_dev(st.st_dev))
        return data_only ? REAL(fdatasync)(fd) : REAL(fsync)(fd);
    fd_tracked(fd, &st, abs);
    enter(data_only ? "fdatasync" : "fsync", abs, NULL);
    int r = data_only ? REAL(fdatasync)(fd) : REAL(fsync)(fd);
    int err = errno;
    if (r == 0) rec_inode('S', &st, "-", abs);
    leave();
    errno = err;
    return r;
}

int fsync(int fd) { return sync_fd(fd, 0); }
int fdatasync(int fd) { return sync_fd(fd, 1); }

int syncfs(int fd) {
    LOAD(syncfs);
    struct stat st;
    if (!S.active || in_shim || fstat(fd, &st) != 0 || !tracked_dev(st.st_dev)) return REAL(syncfs)(fd);
    char abs[PATH_MAX];
    fd_tracked(fd, &st, abs);
    enter("syncfs", abs, NULL);
    int r = REAL(syncfs)(fd);
    int err = errno;
    if (r == 0) journal("F\t%llu", (unsigned long long)st.st_dev);
    leave();
    errno = err;
    return r;
}

void sync(void) {
    LOAD(sync);
    if (!S.active || in_shim) {
        REAL(sync)();
        return;
    }
    enter("sync", NULL, NULL);
    REAL(sync)();
    journal("A");
    leave();
}

/* ---- wrappers: directory entries ----------------------------------------------------- */

/* A deferred directory-entry call: which libc function, and its arguments. */
enum call_kind {
    C_MKDIR, C_MKDIRAT, C_UNLINK, C_UNLINKAT, C_RMDIR, C_REMOVE, C_SYMLINK, C_SYMLINKAT, C_LINK, C_LINKAT
};

struct call {
    enum call_kind kind;
    int d1;
    const char* p1;
    int d2;
    const char* p2;
    int flags;
    mode_t mode;
};

static int do_call(const struct call* c) {
    switch (c->kind) {
    case C_MKDIR: return REAL(mkdir)(c->p1, c->mode);
    case C_MKDIRAT: return REAL(mkdirat)(c->d1, c->p1, c->mode);
    case C_UNLINK: return REAL(unlink)(c->p1);
    case C_UNLINKAT: return REAL(unlinkat)(c->d1, c->p1, c->flags);
    case C_RMDIR: return REAL(rmdir)(c->p1);
    case C_REMOVE: return REAL(remove)(c->p1);
    case C_SYMLINK: return REAL(symlink)(c->p1, c->p2);
    case C_SYMLINKAT: return REAL(symlinkat)(c->p1, c->d2, c->p2);
    case C_LINK: return REAL(link)(c->p1, c->p2);
    case C_LINKAT: return REAL(linkat)(c->d1, c->p1, c->d2, c->p2, c->flags);
    }
    return -1;
}

/* One tracked call that makes a directory entry change: numbered, run, then recorded as
 * `type` with `fields` when it succeeded. */
static int entry_op(const char* name, const char* abs, char type, const char* fields, const struct call* c) {
    enter(name, abs, NULL);
    int r = do_call(c);
    int err = errno;
    if (r == 0) rec_entry(type, abs, fields);
    leave();
    errno = err;
    return r;
}

static int mkdir_common(int dirfd, const char* path, mode_t mode, int at) {
    LOAD(mkdir); LOAD(mkdirat);
    struct call c = {at ? C_MKDIRAT : C_MKDIR, dirfd, path, 0, NULL, 0, mode};
    char abs[PATH_MAX];
    struct stat st;
    /* mkdir -p and make_dirs try existing directories: no change, no operation. */
    if (!S.active || in_shim || !resolve(dirfd, path, abs) || !tracked_path(abs) || lstat(abs, &st) == 0)
        return do_call(&c);
    return entry_op("mkdir", abs, 'N', "d", &c);
}

int mkdir(const char* path, mode_t mode) { return mkdir_common(AT_FDCWD, path, mode, 0); }
int mkdirat(int dirfd, const char* path, mode_t mode) { return mkdir_common(dirfd, path, mode, 1); }

/* Removal of a non-directory: the file is kept alive in the stash until the end of the run. */
static int unlink_tracked(const char* abs, const struct call* c) {
    enter("unlink", abs, NULL);
    char st_name[PATH_MAX * 3];
    stash_link(abs, st_name, sizeof st_name);
    int r = do_call(c);
    int err = errno;
    if (r == 0) rec_entry('U', abs, st_name);
    else unstash(st_name);
    leave();
    errno = err;
    return r;
}

static int rm_common(int dirfd, const char* path, int flags, enum call_kind kind) {
    LOAD(unlink); LOAD(unlinkat); LOAD(rmdir); LOAD(remove);
    struct call c = {kind, dirfd, path, 0, NULL, flags, 0};
    char abs[PATH_MAX];
    struct stat st;
    /* Removing what is not there (remove_durable of a missing file) changes nothing. */
    if (!S.active || in_shim || !resolve(kind == C_UNLINKAT ? dirfd : AT_FDCWD, path, abs) || !tracked_path(abs) ||
        lstat(abs, &st) != 0)
        return do_call(&c);
    int is_dir = kind == C_RMDIR || (kind == C_UNLINKAT && (flags & AT_REMOVEDIR)) ||
                 (kind == C_REMOVE && S_ISDIR(st.st_mode));
    if (!is_dir) return unlink_tracked(abs, &c);
    /* A removed directory comes back with its mode and owner. */
    char f[64];
    snprintf(f, sizeof f, "%o\t%u\t%u", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid);
    return entry_op("rmdir", abs, 'D', f, &c);
}

int unlink(const char* path) { return rm_common(AT_FDCWD, path, 0, C_UNLINK); }
int unlinkat(int dirfd, const char* path, int flags) { return rm_common(dirfd, path, flags, C_UNLINKAT); }
int rmdir(const char* path) { return rm_common(AT_FDCWD, path, 0, C_RMDIR); }
int remove(const char* path) { return rm_common(AT_FDCWD, path, 0, C_REMOVE); }

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int rename_common(int olddir, const char* from, int newdir, const char* to, unsigned flags, int kind) {
    LOAD(rename); LOAD(renameat); LOAD(renameat2);
#define CALL_RENAME()                                         \
    (kind == 0   ? REAL(rename)(from, to)                     \
     : kind == 1 ? REAL(renameat)(olddir, from, newdir, to) \
                 : REAL(renameat2)(olddir, from, newdir, to, flags))
    char a[PATH_MAX], b[PATH_MAX];
    if (!S.active || in_shim || !resolve(olddir, from, a) || !resolve(newdir, to, b) ||
        !(tracked_path(a) || tracked_path(b)))
        return CALL_RENAME();
    enter("rename", a, b);
    /* What the rename replaces: a non-directory is kept in the stash, an (empty) directory is
     * recreated by the undo. */
    char what[PATH_MAX * 3] = "-";
    struct stat st;
    if (!(flags & (RENAME_EXCHANGE | RENAME_NOREPLACE)) && lstat(b, &st) == 0) {
        struct stat src;
        if (lstat(a, &src) == 0 && src.st_dev == st.st_dev && src.st_ino == st.st_ino) {
            /* same file: rename does nothing */
        } else if (S_ISDIR(st.st_mode)) {
            snprintf(what, sizeof what, "d:%o:%u:%u", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
                     (unsigned)st.st_gid);
        } else {
            char s[PATH_MAX * 3];
            stash_link(b, s, sizeof s);
            if (strcmp(s, "-") != 0) {
                what[0] = 's';
                what[1] = ':';
                scopy(what + 2, sizeof what - 2, s);
            }
        }
    }
    int r = CALL_RENAME();
    int err = errno;
    if (r == 0) {
        char pa[PATH_MAX], pb[PATH_MAX], ea[PATH_MAX * 3], eb[PATH_MAX * 3];
        dev_t da, db;
        ino_t ia, ib;
        parent_of(a, pa, &da, &ia);
        parent_of(b, pb, &db, &ib);
        escape(a, ea, sizeof ea);
        escape(b, eb, sizeof eb);
        journal("R\t%llu\t%llu\t%llu\t%llu\t%s\t%s\t%s\t%s", (unsigned long long)da, (unsigned long long)ia,
                (unsigned long long)db, (unsigned long long)ib, (flags & RENAME_EXCHANGE) ? "x" : "-", what, ea, eb);
    } else if (strncmp(what, "s:", 2) == 0) {
        unstash(what + 2);
    }
    leave();
    errno = err;
    return r;
#undef CALL_RENAME
}

int rename(const char* from, const char* to) { return rename_common(AT_FDCWD, from, AT_FDCWD, to, 0, 0); }
int renameat(int od, const char* from, int nd, const char* to) { return rename_common(od, from, nd, to, 0, 1); }
int renameat2(int od, const char* from, int nd, const char* to, unsigned flags) {
    return rename_common(od, from, nd, to, flags, 2);
}

/* New names: symlink, link. */
static int newname_common(int dirfd, const char* path, const char* name, const char* kind, const struct call* c) {
    char abs[PATH_MAX];
    if (!S.active || in_shim || !resolve(dirfd, path, abs) || !tracked_path(abs)) return do_call(c);
    return entry_op(name, abs, 'N', kind, c);
}

int symlink(const char* target, const char* path) {
    LOAD(symlink);
    struct call c = {C_SYMLINK, AT_FDCWD, target, AT_FDCWD, path, 0, 0};
    return newname_common(AT_FDCWD, path, "symlink", "l", &c);
}

int symlinkat(const char* target, int dirfd, const char* path) {
    LOAD(symlinkat);
    struct call c = {C_SYMLINKAT, AT_FDCWD, target, dirfd, path, 0, 0};
    return newname_common(dirfd, path, "symlink", "l", &c);
}

int link(const char* from, const char* to) {
    LOAD(link);
    struct call c = {C_LINK, AT_FDCWD, from, AT_FDCWD, to, 0, 0};
    return newname_common(AT_FDCWD, to, "link", "f", &c);
}

int linkat(int od, const char* from, int nd, const char* to, int flags) {
    LOAD(linkat);
    struct call c = {C_LINKAT, od, from, nd, to, flags, 0};
    return newname_common(nd, to, "link", "f", &c);
}

int close(int fd) {
    LOAD(close);
    if (fd >= 0 && fd < FD_CACHE && S.owner == getpid()) S.fds[fd].valid = 0;
    if (is_internal_fd(fd) && S.owner == getpid()) {
        /* The program closes descriptors it did not open (a close-all loop): ours are
         * reopened on the next operation, and the number may be the program's from now on. */
        int* mine[] = {&S.ctl_fd, &S.journal_fd, &S.undo_fd, &S.log_fd};
        for (size_t i = 0; i < sizeof mine / sizeof mine[0]; ++i)
            if (*mine[i] == fd) *mine[i] = -1;
        S.owner = 0;
    }
    return REAL(close)(fd);
}

/* ---- roll back ----------------------------------------------------------------------- */

struct event {
    unsigned long long op;
    char type;
    char* f[10]; /* fields after the type */
    int nf;
    int durable;
};

struct synced {
    unsigned long long dev, ino;
};

struct inode_path {
    unsigned long long dev, ino;
    char* path;
};

static struct inode_path* imap;
static size_t imap_n, imap_cap;

static void walk(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (imap_n == imap_cap) {
            imap_cap = imap_cap ? imap_cap * 2 : 1024;
            imap = realloc(imap, imap_cap * sizeof *imap);
            if (!imap) die("out of memory");
        }
        imap[imap_n].dev = st.st_dev;
        imap[imap_n].ino = st.st_ino;
        imap[imap_n].path = strdup(p);
        ++imap_n;
        if (S_ISDIR(st.st_mode)) walk(p);
    }
    closedir(d);
}

static int imap_cmp(const void* a, const void* b) {
    const struct inode_path* x = a;
    const struct inode_path* y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static const char* path_of_inode(unsigned long long dev, unsigned long long ino) {
    struct inode_path key = {dev, ino, NULL};
    struct inode_path* r = bsearch(&key, imap, imap_n, sizeof *imap, imap_cmp);
    return r ? r->path : NULL;
}

static void remove_tree(const char* p) {
    struct stat st;
    if (lstat(p, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR* d = opendir(p);
        if (d) {
            struct dirent* e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char c[PATH_MAX];
                if (snprintf(c, sizeof c, "%s/%s", p, e->d_name) < (int)sizeof c) remove_tree(c);
            }
            closedir(d);
        }
        REAL(rmdir)(p);
    } else {
        REAL(unlink)(p);
    }
}

static unsigned long long ull(const char* s) { return strtoull(s, NULL, 10); }

static int covered(const struct synced* s, size_t n, const unsigned long long* devs, size_t nd, int all,
                   unsigned long long dev, unsigned long long ino) {
    if (all) return 1;
    for (size_t i = 0; i < nd; ++i)
        if (devs[i] == dev) return 1;
    for (size_t i = 0; i < n; ++i)
        if (s[i].dev == dev && s[i].ino == ino) return 1;
    return 0;
}

/* Undo of one inode change (phase 1: contents and modes, by inode). */
static int undo_inode(const struct event* e, const char* path) {
    if (e->type == 'M') {
        struct stat st;
        if (lstat(path, &st) != 0 || S_ISLNK(st.st_mode)) return -1;
        return REAL(chmod)(path, (mode_t)strtoul(e->f[2], NULL, 8));
    }
    int fd = REAL(open)(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    int r = 0;
    if (e->type == 'O') {
        r = REAL(ftruncate)(fd, (off_t)strtoll(e->f[2], NULL, 10));
    } else { /* W: off oldsize undo_at undo_len */
        off_t off = strtoll(e->f[2], NULL, 10), old = strtoll(e->f[3], NULL, 10);
        off_t at = strtoll(e->f[4], NULL, 10), len = strtoll(e->f[5], NULL, 10);
        r = REAL(ftruncate)(fd, old);
        char buf[65536];
        for (off_t done = 0; r == 0 && done < len;) {
            size_t want = (size_t)(len - done) < sizeof buf ? (size_t)(len - done) : sizeof buf;
            ssize_t n = pread(S.undo_fd, buf, want, at + done);
            if (n <= 0 || REAL(pwrite)(fd, buf, (size_t)n, off + done) != n) r = -1;
            else done += n;
        }
    }
    REAL(close)(fd);
    return r;
}

static void restore_dir(const char* path, const char* mode, const char* uid, const char* gid) {
    if (REAL(mkdir)(path, 0700) != 0 && errno != EEXIST) return;
    if (lchown(path, (uid_t)ull(uid), (gid_t)ull(gid)) != 0) { /* best effort */ }
    REAL(chmod)(path, (mode_t)strtoul(mode, NULL, 8));
}

/* Undo of one directory-entry change (phase 2, by name). */
static int undo_entry(const struct event* e) {
    char path[PATH_MAX];
    switch (e->type) {
    case 'N': /* pdev pino kind path */
        scopy(path, sizeof path, e->f[3]);
        unescape(path);
        if (e->f[2][0] == 'd') remove_tree(path);
        else if (REAL(unlink)(path) != 0 && errno == EISDIR) remove_tree(path);
        return 0;
    case 'U': { /* pdev pino stash path */
        char st[PATH_MAX];
        scopy(path, sizeof path, e->f[3]);
        scopy(st, sizeof st, e->f[2]);
        unescape(path);
        unescape(st);
        if (strcmp(st, "-") == 0) return -1;
        return REAL(rename)(st, path);
    }
    case 'D': /* pdev pino mode uid gid path */
        scopy(path, sizeof path, e->f[5]);
        unescape(path);
        restore_dir(path, e->f[2], e->f[3], e->f[4]);
        return 0;
    case 'R': { /* pd1 pi1 pd2 pi2 x what from to */
        char from[PATH_MAX], to[PATH_MAX];
        scopy(from, sizeof from, e->f[6]);
        scopy(to, sizeof to, e->f[7]);
        unescape(from);
        unescape(to);
        if (e->f[4][0] == 'x') return REAL(renameat2)(AT_FDCWD, to, AT_FDCWD, from, RENAME_EXCHANGE);
        if (REAL(rename)(to, from) != 0) return -1;
        const char* what = e->f[5];
        if (strncmp(what, "s:", 2) == 0) {
            char st[PATH_MAX];
            scopy(st, sizeof st, what + 2);
            unescape(st);
            return REAL(rename)(st, to);
        }
        if (strncmp(what, "d:", 2) == 0) {
            char buf[128];
            scopy(buf, sizeof buf, what + 2);
            char* m = strtok(buf, ":");
            char* u = strtok(NULL, ":");
            char* g = strtok(NULL, ":");
            if (m && u && g) restore_dir(to, m, u, g);
        }
        return 0;
    }
    }
    return 0;
}

static const char* event_path(const struct event* e) {
    switch (e->type) {
    case 'R': return e->f[7];
    case 'N': case 'U': return e->f[3];
    case 'D': return e->f[5];
    case 'W': return e->f[6];
    case 'O': case 'M': case 'S': return e->f[3];
    }
    return "";
}

/* Undoes every change of the journal that is not durable (see the header). Caller holds the
 * lock; every other process of the run is dead or stopped. */
static void rollback(void) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/journal", S.dir);
    int fd = REAL(open)(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) != 0) die("cannot stat the journal");
    char* text = malloc((size_t)st.st_size + 1);
    if (!text) die("out of memory");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    text[got] = '\0';
    REAL(close)(fd);

    size_t cap = 1024, n = 0;
    struct event* ev = malloc(cap * sizeof *ev);
    for (char* line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (n == cap) {
            cap *= 2;
            ev = realloc(ev, cap * sizeof *ev);
        }
        if (!ev) die("out of memory");
        struct event* e = &ev[n];
        memset(e, 0, sizeof *e);
        char* save = NULL;
        char* tok = strtok_r(line, "\t", &save);
        if (!tok) continue;
        e->op = ull(tok);
        tok = strtok_r(NULL, "\t", &save);
        if (!tok) continue;
        e->type = tok[0];
        while (e->nf < 10 && (tok = strtok_r(NULL, "\t", &save)) != NULL) e->f[e->nf++] = tok;
        ++n;
    }

    /* Durability: newest first, collecting what was synced after each change. */
    struct synced* syn = malloc(sizeof *syn * (n + 1));
    unsigned long long* devs = malloc(sizeof *devs * (n + 1));
    size_t ns = 0, nd = 0;
    int all = 0;
    for (size_t k = n; k-- > 0;) {
        struct event* e = &ev[k];
        switch (e->type) {
        case 'S': syn[ns++] = (struct synced){ull(e->f[0]), ull(e->f[1])}; e->durable = 1; break;
        case 'F': devs[nd++] = ull(e->f[0]); e->durable = 1; break;
        case 'A': all = 1; e->durable = 1; break;
        case 'R':
            e->durable = covered(syn, ns, devs, nd, all, ull(e->f[0]), ull(e->f[1])) ||
                         covered(syn, ns, devs, nd, all, ull(e->f[2]), ull(e->f[3]));
            break;
        default: /* inode changes (W O M) by inode, entry changes (N U D) by parent */
            e->durable = covered(syn, ns, devs, nd, all, ull(e->f[0]), ull(e->f[1]));
        }
    }

    /* Phase 1: contents and modes of every inode still reachable (by name or in the stash). */
    imap_n = 0;
    for (int i = 0; i < S.nroots; ++i) walk(S.roots[i]);
    char stash[PATH_MAX + 16];
    snprintf(stash, sizeof stash, "%s/stash", S.dir);
    walk(stash);
    qsort(imap, imap_n, sizeof *imap, imap_cmp);
    unsigned undone = 0, failed = 0, kept = 0;
    for (size_t k = n; k-- > 0;) {
        struct event* e = &ev[k];
        if (e->type != 'W' && e->type != 'O' && e->type != 'M') continue;
        if (e->durable) {
            ++kept;
            logf_("durable\t%llu\t%c\t%s\n", e->op, e->type, event_path(e));
            continue;
        }
        const char* path = path_of_inode(ull(e->f[0]), ull(e->f[1]));
        int r = path ? undo_inode(e, path) : 0;  /* unreachable: its contents no longer matter */
        if (r != 0) ++failed;
        ++undone;
        logf_("undone\t%llu\t%c\t%s%s\n", e->op, e->type, event_path(e), r ? "\tFAILED" : "");
    }
    /* Phase 2: directory entries, newest first. */
    for (size_t k = n; k-- > 0;) {
        struct event* e = &ev[k];
        if (e->type != 'N' && e->type != 'U' && e->type != 'D' && e->type != 'R') continue;
        if (e->durable) {
            ++kept;
            logf_("durable\t%llu\t%c\t%s\n", e->op, e->type, event_path(e));
            continue;
        }
        int r = undo_entry(e);
        if (r != 0) ++failed;
        ++undone;
        logf_("undone\t%llu\t%c\t%s%s\n", e->op, e->type, event_path(e), r ? "\tFAILED" : "");
    }
    logf_("rollback\tundone=%u\tkept=%u\tfailed=%u\n", undone, kept, failed);
    for (size_t i = 0; i < imap_n; ++i) free(imap[i].path);
    imap_n = 0;
    free(syn);
    free(devs);
    free(ev);
    free(text);
}

/* Sends sig to every other process of this session; returns how many of them are still
 * running (not yet stopped, not dead). */
static int signal_session(int sig) {
    pid_t self = getpid(), sid = getsid(0);
    int running = 0;
    DIR* d = opendir("/proc");
    if (!d) return 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        char* end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self) continue;
        char p[64], buf[1024];
        snprintf(p, sizeof p, "/proc/%ld/stat", pid);
        int fd = REAL(open)(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        REAL(close)(fd);
        if (r <= 0) continue;
        buf[r] = '\0';
        char* rp = strrchr(buf, ')');
        char state;
        int ppid, pgrp, session;
        if (!rp || sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &session) != 4) continue;
        if (session != sid || state == 'Z' || state == 'X') continue;
        kill((pid_t)pid, sig);
        if (state != 'T' && state != 't') ++running;
    }
    closedir(d);
    return running;
}

/* The power loss: every other process of the session is frozen first (no write may land
 * after it, and bartld must not be seen exiting before the disk is in its crashed state),
 * then the journal is rolled back, then the whole session dies. */
static void crash(const char* call, const char* p1, const char* p2) {
    logf_("crash\t%llu\t%d\t%s\t%s%s%s\n", cur_op, (int)getpid(), call, p1 ? p1 : "", p2 ? "\t" : "", p2 ? p2 : "");
    for (int i = 0; i < 5000 && signal_session(SIGSTOP) > 0; ++i) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    rollback();
    S.ctl->crashed = 1;
    signal_session(SIGKILL);
    kill(getpid(), SIGKILL);
    _exit(137);
}

/* ---- set up -------------------------------------------------------------------------- */

__attribute__((constructor)) static void crashsim_init(void) {
    load_all();
    const char* roots = getenv("CRASHSIM_ROOT");
    const char* dir = getenv("CRASHSIM_DIR");
    if (!roots || !*roots || !dir || !*dir) return;
    char* copy = strdup(roots);
    for (char* r = strtok(copy, ":"); r && S.nroots < MAX_ROOTS; r = strtok(NULL, ":")) {
        struct stat st;
        if (stat(r, &st) != 0) continue;
        S.roots[S.nroots] = strdup(r);
        S.root_len[S.nroots] = strlen(r);
        S.root_dev[S.nroots] = st.st_dev;
        ++S.nroots;
    }
    free(copy);
    snprintf(S.dir, sizeof S.dir, "%s", dir);
    S.dir_len = strlen(S.dir);
    const char* log = getenv("CRASHSIM_LOG");
    if (log) snprintf(S.log_path, sizeof S.log_path, "%s", log);
    const char* at = getenv("CRASHSIM_AT");
    S.at = at ? strtoull(at, NULL, 10) : 0;
    S.active = S.nroots > 0;
    if (S.active && getenv("CRASHSIM_POWEROFF")) {
        in_shim = 1;
        lock_shared();
        logf_("poweroff\t%llu\n", (unsigned long long)S.ctl->counter);
        rollback();
        S.ctl->crashed = 1;
        unlock_shared();
        _exit(0);
    }
}
