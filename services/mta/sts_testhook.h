/* A test hook of the MTA-STS lookup (sts_testhook.c); nothing in a release build. */
#ifndef MTA_STS_TESTHOOK_H
#define MTA_STS_TESTHOOK_H
struct event_base;
struct mta_sts;
void mta_sts_testhook_start(struct event_base *base, struct mta_sts *sts);
void mta_sts_testhook_stop(void); /* before mta_sts_free: lookups still running are its to cancel */
#endif
