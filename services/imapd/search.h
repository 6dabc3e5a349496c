/* SEARCH criteria (RFC 9051 §6.4.4, RFC 3501 §6.4.4): the arguments of SEARCH / UID SEARCH
 * parsed once into a program, then matched against each message through a small interface
 * (struct imap_search_msg for what the folder listing knows, struct imap_search_env for the
 * folder and the callbacks that read a message). The caller walks the folder and writes
 * the response (SEARCH or, with RETURN, ESEARCH).
 *
 * What this file owns: the grammar (keys, NOT, OR, lists, CHARSET, RETURN), its bounds,
 * dates, and the matching rules; not the decoding of headers and bodies (the callbacks:
 * RFC 2047 words and transfer encodings are undone by the caller with GMime).
 *
 * Cheap first: keys needing only the listing (flags, sequence numbers, UIDs, size,
 * INTERNALDATE) are tried before header keys, and header keys before BODY / TEXT, at every
 * level of the program (AND is reordered; OR tries its cheaper side first) and matching
 * stops as soon as the answer is known. So callbacks that open / parse the file lazily, on
 * their first call for a message, never open one the cheap keys already decided.
 * imap_search_needs() says beforehand whether any callback can be called at all.
 *
 * Case: BODY, TEXT and the header keys match substrings ignoring ASCII case (bytes >= 0x80
 * compared exactly: no Unicode case folding). CHARSET: UTF-8 and US-ASCII only, anything
 * else is NO [BADCHARSET (UTF-8 US-ASCII)] (IMAP_SEARCH_BADCHARSET). */
#ifndef IMAP_SEARCH_H
#define IMAP_SEARCH_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "args.h"

#define IMAP_SEARCH_DEPTH_MAX 32  /* nesting of (), NOT and OR */
#define IMAP_SEARCH_KEYS_MAX 1000 /* keys in one program */
/* BODY and TEXT keys in one program: each one reads every body again (one shared loop
 * serves every session, so 600 of them over large messages stalled everyone). */
#define IMAP_SEARCH_TEXT_KEYS_MAX 8

/* imap_search_parse results. */
enum imap_search_status {
    IMAP_SEARCH_OK = 0,
    IMAP_SEARCH_BAD = -1,        /* syntax or bound: tagged BAD with *err */
    IMAP_SEARCH_BADCHARSET = -2, /* tagged "NO [BADCHARSET (UTF-8 US-ASCII)] " *err */
    IMAP_SEARCH_NOMEM = -3,      /* tagged NO */
};

/* Options of imap_search_parse: extensions the server offers. */
enum imap_search_opt {
    IMAP_SEARCH_OPT_ESEARCH = 1u << 0,   /* RETURN (MIN MAX COUNT ALL) (RFC 4731 / 9051) */
    IMAP_SEARCH_OPT_CONDSTORE = 1u << 1, /* the MODSEQ key (RFC 7162 §3.4) */
};

/* Flag bits of struct imap_search_msg.flags (the caller maps its own flag bits). */
enum imap_search_flag {
    IMAP_SEARCH_F_SEEN = 1u << 0,
    IMAP_SEARCH_F_ANSWERED = 1u << 1,
    IMAP_SEARCH_F_FLAGGED = 1u << 2,
    IMAP_SEARCH_F_DELETED = 1u << 3,
    IMAP_SEARCH_F_DRAFT = 1u << 4,
};

/* RETURN options (imap_search_returns). An empty RETURN () means ALL (RFC 4731 §3.1). */
enum imap_search_return {
    IMAP_SEARCH_RET_MIN = 1u << 0,
    IMAP_SEARCH_RET_MAX = 1u << 1,
    IMAP_SEARCH_RET_COUNT = 1u << 2,
    IMAP_SEARCH_RET_ALL = 1u << 3,
};

/* imap_search_needs bits. */
enum imap_search_need {
    IMAP_SEARCH_NEED_HEADERS = 1u << 0, /* header keys or SENT*: env->header / sent_date */
    IMAP_SEARCH_NEED_BODY = 1u << 1,    /* BODY / TEXT: env->body_has */
    IMAP_SEARCH_NEED_MODSEQ = 1u << 2,  /* MODSEQ key: msg->modseq; reply with (MODSEQ n) */
};

struct imap_search; /* the parsed program, opaque */

/* Parses args[0..nargs) (everything after SEARCH). On IMAP_SEARCH_OK *out is the program
 * (imap_search_free it); otherwise *out is NULL and *err a static text for the reply
 * (without a response code: the caller adds [BADCHARSET ...]). */
enum imap_search_status imap_search_parse(const struct imap_arg *args, size_t nargs, unsigned opts,
                                          struct imap_search **out, const char **err);
void imap_search_free(struct imap_search *p);

unsigned imap_search_needs(const struct imap_search *p);
/* 1 if RETURN was given: answer with ESEARCH (RFC 4731), imap_search_returns() saying
 * which parts (never 0 then). */
int imap_search_is_esearch(const struct imap_search *p);
unsigned imap_search_returns(const struct imap_search *p);
/* How many BODY and TEXT keys the program has (each may read a whole body once). */
size_t imap_search_text_keys(const struct imap_search *p);

/* What the folder listing knows of one message. */
struct imap_search_msg {
    uint32_t seq, uid;
    unsigned flags;       /* IMAP_SEARCH_F_* */
    int recent;           /* \Recent in this session */
    uint64_t size;        /* RFC822.SIZE */
    time_t internaldate;  /* its date is taken in UTC (as INTERNALDATE is sent, +0000) */
    uint64_t modseq;      /* only read with IMAP_SEARCH_NEED_MODSEQ */
    void *ctx;            /* the caller's message, handed to the callbacks */
};

/* The folder (constant during one search) and the callbacks that read a message. A
 * callback returning -1 (the file vanished, no memory) makes imap_search_match -1. */
struct imap_search_env {
    uint32_t count;   /* messages in the folder: '*' of a sequence-set key */
    uint32_t max_uid; /* UID of the last message: '*' of a UID key */
    /* The i-th (0, 1, ...) value of the header fields called name (case-insensitive),
     * unfolded and RFC 2047-decoded, in *len bytes; NULL after the last one. The text is
     * read before the next call. May be NULL if needs() has no NEED_HEADERS. */
    const char *(*header)(void *msg_ctx, const char *name, size_t i, size_t *len);
    /* The Date: field's date in its own time zone (RFC 9051: SENT* disregard time and
     * zone): 1 with *year, *month (1-12), *day; 0 when absent or unparsable (SENT* keys
     * then do not match); -1 on error. */
    int (*sent_date)(void *msg_ctx, int *year, int *month, int *day);
    /* 1 if the decoded body text (text = 0: BODY) or the header or body (text = 1: TEXT)
     * contains needle[0..len) ignoring ASCII case (imap_search_contains does that for a
     * buffer), 0 if not, -1 on error. Never called with len == 0 (that matches all). */
    int (*body_has)(void *msg_ctx, const char *needle, size_t len, int text);
    /* 1 if the message has the keyword (KEYWORD / UNKEYWORD); NULL: no keywords exist. */
    int (*has_keyword)(void *msg_ctx, const char *keyword);
};

/* 1 if m matches the program, 0 if not, -1 if a callback failed. The program caches
 * resolved sequence sets (hence not const): one program per search, one thread. */
int imap_search_match(struct imap_search *p, const struct imap_search_env *env, const struct imap_search_msg *m);

/* Substring test ignoring ASCII case; an empty needle is found everywhere. */
int imap_search_contains(const char *hay, size_t haylen, const char *needle, size_t nlen);

/* RFC 9051 date-text ("1-Feb-2026": day 1 or 2 digits, month any case, year 4 digits; the
 * argument may be an atom or a quoted string): 0 and *days (since 1970-01-01, negative
 * before), or -1. */
int imap_date_parse(const char *s, size_t len, int32_t *days);
/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int32_t imap_days_from_civil(int year, int month, int day);

#endif
