/* Hexadecimal digits, for the decoders of %-escapes in URIs and of TLSA presentation data. */
#ifndef PM_HEX_H
#define PM_HEX_H

/* 0..15, or -1 if c is not a hex digit (either case). */
static inline int pm_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
