/*
 * spool.h: this process's on-disk spool of spend rows, one JSON object per
 * line, in [spend] spool_dir.
 *
 * Appending is one write(2) of a whole line to the process's own file,
 * <pid>-<time>-<seq>.spool, created under a temporary name, locked with
 * flock(2) for the life of the process and only then renamed into place:
 * a spool file whose lock is free belongs to a process that is gone (an
 * orphan). A file is replaced by a new one once it is over 8 MiB and
 * shipped to its end; its reader removes it.
 *
 * One reader per process (the shipper) follows the file being appended to
 * and says how far it has shipped; each appended line may carry a tag that
 * is handed back once the line is shipped. The directory is the one of the
 * first gw_spool_init: changing spool_dir takes a restart.
 */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

/* The reader's place in this process's spool: a plain value struct. */
struct gw_spool_reader {
	int fd;       /* the file being shipped, or -1 */
	uint64_t off; /* bytes of fd shipped so far */
	char path[4096];
};
#define GW_SPOOL_READER_INIT                                                   \
	{                                                                      \
		-1, 0, ""                                                      \
	}

/* Complete lines read from a spool file, as one batch. */
struct gw_spool_batch {
	struct gw_buf json; /* "[line,line,...]": the lines as a JSON array */
	char *raw;          /* the bytes read; raw[0..used) are the lines */
	size_t used;        /* bytes of the file the batch covers */
	int rows;           /* non-empty lines in it */
};

/*
 * Use dir for the spool (created, mode 0700, when missing). The first
 * call wins; later ones are ignored. GW_E_INTERNAL (logged) when dir
 * cannot be created.
 */
enum gw_status gw_spool_init(const char *dir) GW_NONNULL(1);
/* The spool directory ("" before gw_spool_init). Borrowed. */
const char *gw_spool_dir(void);

/*
 * Append line (len bytes, ending in '\n') to this process's spool file
 * with one write(2), opening the file on first use. tag, when non-NULL, is
 * handed to the done callback of gw_spool_shipped once the line is
 * shipped. GW_E_INTERNAL with errno set when the line could not be
 * written whole (not logged: the caller knows what the line was).
 */
enum gw_status gw_spool_append(const char *line, size_t len, void *tag)
    GW_NONNULL(1);

/*
 * Point rd at the file being appended to, once the file rd holds (if any)
 * is shipped to its end: that one is closed and removed. Call before each
 * read; rd->fd stays -1 until something was appended.
 */
void gw_spool_follow(struct gw_spool_reader *rd) GW_NONNULL(1);

/*
 * rd->off has moved past rows more shipped lines: hand the tag of each
 * line of the current file now shipped to done (outside the spool's lock,
 * in append order), update the backlog, and replace the file by a new one
 * once it is big and shipped to its end.
 */
void gw_spool_shipped(struct gw_spool_reader *rd, int rows,
    void (*done)(void *tag)) GW_NONNULL(1, 3);

/*
 * Read the complete lines of fd from offset off, at most max_rows
 * non-empty ones, into b (initialised by the call; release with
 * gw_spool_batch_fini). A line longer than the first read is read whole
 * (up to 64 MiB). b->used is 0 when no complete line is there yet.
 */
void gw_spool_read(int fd, uint64_t off, int max_rows, struct gw_spool_batch *b)
    GW_NONNULL(4);
/* Free what gw_spool_read allocated in b. */
void gw_spool_batch_fini(struct gw_spool_batch *b) GW_NONNULL(1);

/*
 * Keep a line PostgreSQL refused as data (len bytes) in rejected.jsonl in
 * the spool directory, for an operator, and log it at err with why (never
 * the line itself).
 */
void gw_spool_reject(const char *line, size_t len, const char *why)
    GW_NONNULL(1, 3);

/*
 * Offer every orphan spool file (of a process that is gone) to ship(arg,
 * fd), locked against other readers. ship returns 0 once the file is
 * shipped to its end (the file is then removed), > 0 to leave it, < 0 to
 * stop the scan (e.g. the database is down).
 */
void gw_spool_orphans(int (*ship)(void *arg, int fd), void *arg) GW_NONNULL(1);

/*
 * At a process's end: remove its spool file when every line in it is
 * shipped (1; a line appended later opens a new file), else keep it for
 * the next start to ship as an orphan (0).
 */
int gw_spool_retire(void);

/* Bytes appended by this process and not yet shipped. */
uint64_t gw_spool_backlog(void);

#endif /* GW_SPOOL_H */
