/*
 * spool.c: the on-disk spool of spend rows: this process's append file,
 * its reader's progress and rotation, orphan files and refused rows.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

/* A spool file is replaced once this big and fully shipped. */
#define SPOOL_ROTATE_BYTES (8 * 1024 * 1024)
/* One batch reads at most this much of a spool... */
#define READ_CHUNK (1024 * 1024)
/* ...unless a line is longer (captures are bounded well below this). */
#define SPOOL_LINE_MAX (64 * 1024 * 1024)

/* A tagged line: its tag goes back to the shipper once shipped. */
struct tagged {
	uint64_t end; /* offset just past the line in the append file */
	void *tag;
	struct tagged *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char spool_dir[4096];
/* The file appended to. */
static int append_fd = -1;
static char append_path[4096];
static uint64_t append_size;
static unsigned append_seq;
static struct tagged *tags_head, *tags_tail;
/* Bytes, for gw_spool_backlog; rows, for the backlog gauge. */
static uint64_t shipped_total, spooled_total;
static uint64_t rows_spooled, rows_shipped;

enum gw_status
gw_spool_init(const char *dir)
{
	enum gw_status st = GW_OK;

	struct stat sb;

	pthread_mutex_lock(&lock);
	if (spool_dir[0] == '\0') {
		gw_strlcpy(spool_dir, dir, sizeof(spool_dir));
		if (mkdir(spool_dir, 0700) != 0 && errno != EEXIST) {
			gw_log_errno(NULL, "spend",
			    "cannot create spool dir %s", spool_dir);
			st = GW_E_INTERNAL;
		} else if (lstat(spool_dir, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
		           sb.st_uid != geteuid()) {
			/*
			 * Rows found here are shipped as this gateway's spend:
			 * a directory (or symlink) someone else owns is not a
			 * place to read them from.
			 */
			gw_log_err(NULL, "spend",
			    "spool dir %s is not a directory owned by this "
			    "user "
			    "(uid %u): refusing it",
			    spool_dir, (unsigned)geteuid());
			st = GW_E_INTERNAL;
		} else if ((sb.st_mode & 0077) != 0 &&
		           chmod(spool_dir, 0700) != 0) {
			gw_log_errno(
			    NULL, "spend", "cannot chmod 0700 %s", spool_dir);
			st = GW_E_INTERNAL;
		}
	}
	pthread_mutex_unlock(&lock);
	return st;
}

const char *
gw_spool_dir(void)
{
	return spool_dir;
}

/*
 * Open a new spool file: created under a temporary name, locked, renamed.
 * path is set only on success (the reader follows it); lock held.
 */
static int
spool_open(char *path, size_t pathlen)
{
	char tmp[4200], name[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.new-%d-%u", spool_dir, (int)getpid(),
	    append_seq);
	snprintf(name, sizeof(name), "%s/%d-%ld-%u.spool", spool_dir,
	    (int)getpid(), (long)time(NULL), append_seq++);
	fd = open(tmp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* Held until this process exits: a free lock marks an orphan. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, name) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	gw_strlcpy(path, name, pathlen);
	return fd;
}

/* The backlog gauge; lock held. */
static void
set_gauge(void)
{
	gw_metrics_gauge_set_pid(
	    GW_METRIC_SPEND_BACKLOG, (int64_t)(rows_spooled - rows_shipped));
}

enum gw_status
gw_spool_append(const char *line, size_t len, void *tag)
{
	struct tagged *t = NULL;
	ssize_t n;
	int saved;

	if (tag != NULL) {
		t = gw_xmalloc(sizeof(*t));
		t->tag = tag;
		t->next = NULL;
	}
	pthread_mutex_lock(&lock);
	if (append_fd < 0)
		append_fd = spool_open(append_path, sizeof(append_path));
	n = append_fd < 0 ? -1 : write(append_fd, line, len);
	if (n != (ssize_t)len) {
		saved = n < 0 ? errno : EIO;
		pthread_mutex_unlock(&lock);
		free(t);
		errno = saved;
		return GW_E_INTERNAL;
	}
	append_size += len;
	spooled_total += len;
	rows_spooled++;
	set_gauge();
	if (t != NULL) {
		t->end = append_size;
		if (tags_tail != NULL)
			tags_tail->next = t;
		else
			tags_head = t;
		tags_tail = t;
	}
	pthread_mutex_unlock(&lock);
	return GW_OK;
}

void
gw_spool_follow(struct gw_spool_reader *rd)
{
	struct stat st;
	uint64_t sz = 0;

	pthread_mutex_lock(&lock);
	if (append_path[0] != '\0' && strcmp(rd->path, append_path) != 0) {
		if (rd->fd >= 0 && fstat(rd->fd, &st) == 0)
			sz = (uint64_t)st.st_size;
		/* The old file goes once shipped to its end. */
		if (rd->fd < 0 || rd->off >= sz) {
			if (rd->fd >= 0) {
				close(rd->fd);
				unlink(rd->path);
			}
			gw_strlcpy(rd->path, append_path, sizeof(rd->path));
			rd->fd = open(rd->path, O_RDONLY | O_CLOEXEC);
			rd->off = 0;
		}
	}
	pthread_mutex_unlock(&lock);
}

void
gw_spool_shipped(struct gw_spool_reader *rd, int rows, void (*done)(void *tag))
{
	struct tagged *t, *ready = NULL, **tail = &ready;
	int fd;

	pthread_mutex_lock(&lock);
	if (strcmp(rd->path, append_path) != 0) {
		pthread_mutex_unlock(&lock);
		return;
	}
	shipped_total = spooled_total - (append_size - rd->off);
	while ((t = tags_head) != NULL && t->end <= rd->off) {
		tags_head = t->next;
		if (tags_head == NULL)
			tags_tail = NULL;
		t->next = NULL;
		*tail = t;
		tail = &t->next;
	}
	rows_shipped += (uint64_t)rows;
	set_gauge();
	/*
	 * Rotate a big, fully shipped file (every tag is back by now). The
	 * old one goes at once, while its lock is still held: left on disk
	 * unlocked, it would look orphaned, and an orphan scan (this
	 * process's or another's) would send all its rows again.
	 */
	if (rd->off == append_size && append_size > SPOOL_ROTATE_BYTES) {
		char old[sizeof(append_path)];

		gw_strlcpy(old, append_path, sizeof(old));
		if ((fd = spool_open(append_path, sizeof(append_path))) >= 0) {
			unlink(old);
			close(append_fd);
			append_fd = fd;
			append_size = 0;
		}
	}
	pthread_mutex_unlock(&lock);
	while ((t = ready) != NULL) {
		ready = t->next;
		done(t->tag);
		free(t);
	}
}

void
gw_spool_read(int fd, uint64_t off, int max_rows, struct gw_spool_batch *b)
{
	size_t cap = READ_CHUNK, start;
	ssize_t n;

	memset(b, 0, sizeof(*b));
	b->raw = gw_xmalloc(cap);
	n = pread(fd, b->raw, cap, (off_t)off);
	/* A line longer than the chunk (a big captured answer): read more. */
	while (n == (ssize_t)cap && memchr(b->raw, '\n', cap) == NULL &&
	       cap < SPOOL_LINE_MAX) {
		cap *= 4;
		b->raw = gw_xrealloc(b->raw, cap);
		n = pread(fd, b->raw, cap, (off_t)off);
	}
	if (n <= 0)
		return;
	gw_buf_puts(&b->json, "[");
	for (start = 0; start < (size_t)n && b->rows < max_rows;) {
		char *nl = memchr(b->raw + start, '\n', (size_t)n - start);

		if (nl == NULL)
			break; /* an incomplete line: not yet written */
		if (nl > b->raw + start) {
			if (b->rows > 0)
				gw_buf_puts(&b->json, ",");
			gw_buf_append(&b->json, b->raw + start,
			    (size_t)(nl - (b->raw + start)));
			b->rows++;
		}
		start = (size_t)(nl - b->raw) + 1;
		b->used = start;
	}
	gw_buf_puts(&b->json, "]");
}

void
gw_spool_batch_fini(struct gw_spool_batch *b)
{
	gw_buf_fini(&b->json);
	free(b->raw);
	b->raw = NULL;
	b->used = 0;
	b->rows = 0;
}

/*
 * A row PostgreSQL refuses as data (SQLSTATE class 22) would fail every
 * retry and hold back every row behind it: it goes to rejected.jsonl in
 * the spool directory, kept for an operator, and the spool moves on.
 */
void
gw_spool_reject(const char *line, size_t len, const char *why)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/rejected.jsonl", spool_dir);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, len) != (ssize_t)len)
		gw_log_err(NULL, "spend", "cannot keep a refused row in %s: %s",
		    path, strerror(errno));
	if (fd >= 0)
		close(fd);
	gw_log_err(NULL, "spend",
	    "PostgreSQL refused a spooled row; kept in %s: %s", path, why);
}

void
gw_spool_orphans(int (*ship)(void *arg, int fd), void *arg)
{
	DIR *d = opendir(spool_dir);
	struct dirent *e;
	char path[4400];
	struct stat st;
	int fd, r;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len < 7 || strcmp(e->d_name + len - 6, ".spool") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", spool_dir, e->d_name);
		pthread_mutex_lock(&lock);
		r = strcmp(path, append_path) == 0;
		pthread_mutex_unlock(&lock);
		if (r)
			continue;
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		/* Only files this user wrote are its spend. */
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    st.st_uid != geteuid()) {
			gw_log_warn(NULL, "spend",
			    "spool file %s is not this user's: not shipped",
			    e->d_name);
			close(fd);
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			close(fd); /* its process lives */
			continue;
		}
		/*
		 * Another process's writer may have shipped and unlinked it
		 * between our open and our lock: shipping it again would be
		 * harmless for rows (ON CONFLICT) but would keep refused rows
		 * twice.
		 */
		if (fstat(fd, &st) != 0 || st.st_nlink == 0) {
			close(fd);
			continue;
		}
		r = ship(arg, fd);
		if (r == 0) {
			gw_log_info(NULL, "spend", "shipped orphan spool %s",
			    e->d_name);
			unlink(path);
		}
		close(fd);
		if (r < 0)
			break;
	}
	closedir(d);
}

int
gw_spool_retire(void)
{
	int gone = 0;

	pthread_mutex_lock(&lock);
	/*
	 * Removed while its lock is still held, as a rotated file is: left
	 * on disk, the next start would take it for an orphan and send every
	 * row again (refused as duplicates, then sent once more with ON
	 * CONFLICT).
	 */
	if (append_fd >= 0 && spooled_total == shipped_total) {
		unlink(append_path);
		close(append_fd);
		append_fd = -1;
		append_path[0] = '\0';
		append_size = 0;
		gone = 1;
	}
	pthread_mutex_unlock(&lock);
	return gone;
}

uint64_t
gw_spool_backlog(void)
{
	uint64_t b;

	pthread_mutex_lock(&lock);
	b = spooled_total - shipped_total;
	pthread_mutex_unlock(&lock);
	return b;
}
