/* The milter protocol, version 6 (Sendmail's libmilter, mfdef.h; Postfix MILTER_README):
 * the pure codec, no I/O. A packet is a 4-byte length in network order (covering what
 * follows), one command or reply byte, and the data. Every packet from a milter is hostile
 * input: its length is bounded (MILTER_MAX_PACKET), every string in it must end inside it,
 * and each reply's shape is checked before anything reads it. */
#ifndef SMTPD_MILTER_PROTO_H
#define SMTPD_MILTER_PROTO_H
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define MILTER_VERSION 6
#define MILTER_MAX_PACKET (1024 * 1024) /* data of one packet at most (SMFIP_MDS_1M's chunk) */
#define MILTER_BODY_CHUNK 65535          /* body octets per SMFIC_BODY */
#define MILTER_MAX_REPLY_TEXT 512        /* an SMTP reply line a milter may set */

/* The MTA's commands (SMFIC_*) */
enum {
    SMFIC_ABORT = 'A', SMFIC_BODY = 'B', SMFIC_CONNECT = 'C', SMFIC_MACRO = 'D', SMFIC_BODYEOB = 'E',
    SMFIC_HELO = 'H', SMFIC_QUIT_NC = 'K', SMFIC_HEADER = 'L', SMFIC_MAIL = 'M', SMFIC_EOH = 'N',
    SMFIC_OPTNEG = 'O', SMFIC_QUIT = 'Q', SMFIC_RCPT = 'R', SMFIC_DATA = 'T', SMFIC_UNKNOWN = 'U',
};

/* The milter's replies (SMFIR_*) */
enum {
    SMFIR_ADDRCPT = '+', SMFIR_DELRCPT = '-', SMFIR_ADDRCPT_PAR = '2', SMFIR_SHUTDOWN = '4', SMFIR_ACCEPT = 'a',
    SMFIR_REPLBODY = 'b', SMFIR_CONTINUE = 'c', SMFIR_DISCARD = 'd', SMFIR_CHGFROM = 'e', SMFIR_CONN_FAIL = 'f',
    SMFIR_ADDHEADER = 'h', SMFIR_INSHEADER = 'i', SMFIR_SETSYMLIST = 'l', SMFIR_CHGHEADER = 'm',
    SMFIR_PROGRESS = 'p', SMFIR_QUARANTINE = 'q', SMFIR_REJECT = 'r', SMFIR_SKIP = 's', SMFIR_TEMPFAIL = 't',
    SMFIR_REPLYCODE = 'y',
};

/* Actions a milter may take (SMFIF_*), offered in OPTNEG */
#define SMFIF_ADDHDRS 0x01u
#define SMFIF_CHGBODY 0x02u
#define SMFIF_ADDRCPT 0x04u
#define SMFIF_DELRCPT 0x08u
#define SMFIF_CHGHDRS 0x10u
#define SMFIF_QUARANTINE 0x20u
#define SMFIF_CHGFROM 0x40u
#define SMFIF_ADDRCPT_PAR 0x80u
#define SMFIF_SETSYMLIST 0x100u
/* What we carry out: recipients and the sender are never changed (not built). */
#define MILTER_OUR_ACTIONS (SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_CHGHDRS | SMFIF_QUARANTINE)

/* Protocol steps a milter may leave out or not answer (SMFIP_*) */
#define SMFIP_NOCONNECT 0x01u
#define SMFIP_NOHELO 0x02u
#define SMFIP_NOMAIL 0x04u
#define SMFIP_NORCPT 0x08u
#define SMFIP_NOBODY 0x10u
#define SMFIP_NOHDRS 0x20u
#define SMFIP_NOEOH 0x40u
#define SMFIP_NR_HDR 0x80u
#define SMFIP_NOUNKNOWN 0x100u
#define SMFIP_NODATA 0x200u
#define SMFIP_SKIP 0x400u
#define SMFIP_RCPT_REJ 0x800u
#define SMFIP_NR_CONN 0x1000u
#define SMFIP_NR_HELO 0x2000u
#define SMFIP_NR_MAIL 0x4000u
#define SMFIP_NR_RCPT 0x8000u
#define SMFIP_NR_DATA 0x10000u
#define SMFIP_NR_UNKN 0x20000u
#define SMFIP_NR_EOH 0x40000u
#define SMFIP_NR_BODY 0x80000u
#define SMFIP_HDR_LEADSPC 0x100000u
/* What we honour: every step may be left out or left unanswered, SKIP is understood. Not
 * offered: RCPT_REJ (rejected recipients are not shown), HDR_LEADSPC, the large-chunk bits. */
#define MILTER_OUR_PROTOCOL                                                                                      \
    (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH |      \
     SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL |  \
     SMFIP_NR_RCPT | SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* ---- encoding: each appends one whole packet to out; 0, or -1 (too long, out of memory) */
int milter_enc_optneg(struct evbuffer *out, uint32_t version, uint32_t actions, uint32_t protocol);
/* SMFIC_MACRO for the command cmd: names[i] = values[i] (NULL values are left out). */
int milter_enc_macros(struct evbuffer *out, char cmd, const char *const *names, const char *const *values, int n);
/* family '4', '6' (or 'U' unknown: no port, no address) */
int milter_enc_connect(struct evbuffer *out, const char *host, char family, uint16_t port, const char *addr);
int milter_enc_helo(struct evbuffer *out, const char *helo);
/* SMFIC_MAIL / SMFIC_RCPT: "<address>" then each ESMTP argument, every one NUL-ended. */
int milter_enc_envelope(struct evbuffer *out, char cmd, const char *address, const char *const *args, int nargs);
int milter_enc_header(struct evbuffer *out, const char *name, const char *value);
int milter_enc_body(struct evbuffer *out, const void *data, size_t len); /* len <= MILTER_BODY_CHUNK */
int milter_enc_simple(struct evbuffer *out, char cmd);                  /* ABORT, EOH, DATA, BODYEOB, QUIT */

/* ---- framing: takes one packet out of in.
 * 1: *cmd, and data/len (malloc'd, NUL-terminated for convenience; the caller frees);
 * 0: not complete yet; -1: a bad length (0 or over MILTER_MAX_PACKET): the stream is lost. */
int milter_frame(struct evbuffer *in, char *cmd, unsigned char **data, size_t *len);

/* ---- a milter's reply, decoded; the strings point into the packet's data */
struct milter_reply {
    char code;               /* SMFIR_* (or SMFIC_OPTNEG for the negotiation's answer) */
    uint32_t version, actions, protocol; /* OPTNEG */
    uint32_t index;          /* CHGHEADER: nth occurrence (1-based); INSHEADER: position (0: top) */
    const char *name;        /* ADDHEADER, CHGHEADER, INSHEADER */
    const char *value;       /* the same ("" for CHGHEADER: delete) */
    const char *text;        /* REPLYCODE: "550 5.7.1 ..."; QUARANTINE: the reason */
    const unsigned char *body; size_t body_len; /* REPLBODY */
};

/* 0 and r, or -1 with why: an unknown code, a string not ended inside the packet, a header
 * name that is not one, a reply code that is not 4xx/5xx, a value holding a bare CR or a NUL. */
int milter_decode_reply(char cmd, const unsigned char *data, size_t len, struct milter_reply *r, char *why,
                        size_t whysize);

/* Splits data into its NUL-ended strings (an SMFIC_* packet's arguments; also what the unit
 * tests use to read what we sent). The number of strings, or -1 if the last is not ended. */
int milter_strings(const unsigned char *data, size_t len, const char **out, int max);

#endif
